"""Zarr prediction speed, this checkout against an older revision, in the same run.

Times ``denoise_zarr`` (CPU preset, the plain prediction path: an untrained network of
the preset's shape with no learned noise model, the path the 0.6 MP/s of
``docs/volumes.md`` measured) on the same input Zarr, each run in a fresh process,
variants interleaved (A B C A B C ...) so a neighbour's load falls on all of them
alike; the median of ``--repeats`` runs per variant. The baseline's source is taken
from git (``git archive --baseline-rev``) into a temporary folder and run with
``PYTHONPATH`` pointing at it; this checkout's ``src`` runs the others.
``--posterior`` times, in the same way, a model with a learned noise model (a variance
head: ``denoise`` then makes 16 blind-spot passes for the posterior mean).

    python benchmarks/zarr_speed.py                  # 16 MP, 3 repeats, ~6 min on 2 cores

Prints a markdown table and writes ``benchmarks/results/zarr_speed.json`` (with the
machine's load average before and after). Run it alone for numbers to quote.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "84285b7"  # main before the halo-as-context change
DEFAULT_VARIANTS = ["baseline", "new", "new:workers=2", "new:chunk=2048"]


def parse_variant(text: str) -> dict:
    """``code[:key=value,...]``: code is ``baseline`` or ``new``; keys workers, chunk."""
    code, _, rest = text.partition(":")
    if code not in ("baseline", "new"):
        raise SystemExit(f"variant {text!r}: code must be baseline or new")
    variant = {"name": text, "code": code, "workers": 1, "chunk": 1024}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in ("workers", "chunk"):
            raise SystemExit(f"variant {text!r}: unknown option {key!r}")
        variant[key] = int(value)
    return variant


# ------------------------------------------------------------------ in the child
def peak_rss_mib() -> float:
    """Peak resident memory of this process (``VmHWM``: not the parent's, as
    ``ru_maxrss`` can be after fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> None:
    """One run: denoise the input Zarr with the code on PYTHONPATH; one JSON line."""
    import semdenoise as sd

    start = time.perf_counter()
    sd.denoise_zarr(
        args.model,
        args.input,
        args.output,
        chunk_size=args.chunk,
        workers=args.workers,
        progress_every=600,
    )
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "code": sd.__file__}))


# ----------------------------------------------------------------- in the parent
def write_model(path: Path, posterior: bool) -> None:
    """The CPU preset's network, untrained (speed does not depend on the weights); with
    ``posterior`` a variance head and a noise model, so ``denoise`` takes the posterior."""
    import torch

    import semdenoise as sd
    from semdenoise.config import cpu_unet
    from semdenoise.models.normalization import Normalization
    from semdenoise.models.trained import TrainedModel
    from semdenoise.models.unet import UNet

    torch.manual_seed(0)
    training = {}
    if posterior:
        config = cpu_unet(out_channels=2)
        training["noise_model"] = {"kind": "gaussian", "offset": 0.2, "slope": 0.0}
    else:
        config = cpu_unet()
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": UNet(config).eval()},
        normalization=Normalization(mean=50.0, std=30.0),
        training=training,
    )
    sd.save_model(model, path)


def write_input(path: Path, megapixels: float) -> int:
    """A noisy uint16 image of about ``megapixels`` as a Zarr of 1024-pixel chunks,
    written chunk by chunk (as ``predict_speed.py`` does); returns its side."""
    import numpy as np
    import zarr

    side = int(round((megapixels * 1e6) ** 0.5))
    rng = np.random.default_rng(0)
    chunk = 1024
    array = zarr.create_array(
        store=str(path), shape=(side, side), chunks=(chunk, chunk), dtype="uint16"
    )
    yy, xx = np.mgrid[:chunk, :chunk].astype(np.float32)
    tile = 20.0 + 10.0 * xx / chunk
    for _ in range(40):
        cy, cx, r = rng.uniform(0, chunk), rng.uniform(0, chunk), rng.uniform(3, 12)
        tile += 100.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    for y in range(0, side, chunk):
        for x in range(0, side, chunk):
            h, w = min(chunk, side - y), min(chunk, side - x)
            noisy = tile[:h, :w] + rng.normal(0, 15, (h, w)).astype(np.float32)
            array[y : y + h, x : x + w] = np.clip(noisy + 0.5, 0, None).astype(np.uint16)
    return side


def baseline_source(rev: str, into: Path) -> Path:
    """``src/`` of revision ``rev`` extracted into ``into`` (``git archive``: no worktree
    to clean up if the run is killed)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_once(variant: dict, src: Path, model: Path, source: Path, work: Path) -> dict:
    target = work / "out.zarr"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--model",
        str(model),
        "--input",
        str(source),
        "--output",
        str(target),
        "--workers",
        str(variant["workers"]),
        "--chunk",
        str(variant["chunk"]),
    ]
    env = {**os.environ, "PYTHONPATH": str(src)}
    load = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    shutil.rmtree(target, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{variant['name']} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(row["code"]).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"{variant['name']} imported {row['code']}, not {src}")
    return {"seconds": row["seconds"], "peak_rss_mib": row["peak_rss_mib"], "load_1min": load}


def summary(runs: list[dict], megapixels: float) -> dict:
    seconds = [r["seconds"] for r in runs]
    median = statistics.median(seconds)
    return {
        "seconds_median": median,
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "megapixels_per_s": megapixels / median,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision to beat")
    parser.add_argument("--megapixels", type=float, nargs="+", default=[16.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="baseline|new[:workers=N,chunk=C] (default: "
        + " ".join(DEFAULT_VARIANTS)
        + "; with --posterior: baseline new)",
    )
    parser.add_argument(
        "--posterior", action="store_true", help="a model with a learned noise model"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT / "src"))  # the parent writes model and input with this code
    names = args.variants or (["baseline", "new"] if args.posterior else DEFAULT_VARIANTS)
    variants = [parse_variant(v) for v in names]
    name = "zarr_speed_posterior.json" if args.posterior else "zarr_speed.json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    results: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "baseline_rev": args.baseline_rev,
        "new_rev": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        + (" (+ uncommitted changes)" if _dirty() else ""),
        "model": "CPU preset (depth 3, 16 ch), untrained, "
        + ("variance head + gaussian noise model (posterior)" if args.posterior else "plain"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_before": os.getloadavg(),
        },
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = {
            "baseline": baseline_source(args.baseline_rev, work / "baseline"),
            "new": ROOT / "src",
        }
        model = work / "model.pt"
        write_model(model, args.posterior)
        for megapixels in args.megapixels:
            source = work / "in.zarr"
            side = write_input(source, megapixels)
            true_mp = side * side / 1e6
            runs: dict[str, list[dict]] = {v["name"]: [] for v in variants}
            print(f"## {true_mp:.1f} MP ({side}x{side}), {args.repeats} repeats", flush=True)
            for repeat in range(args.repeats):
                for variant in variants:
                    row = run_once(variant, sources[variant["code"]], model, source, work)
                    runs[variant["name"]].append(row)
                    print(
                        f"  repeat {repeat + 1} {variant['name']}: {row['seconds']:.1f} s "
                        f"(load {row['load_1min']:.2f})",
                        flush=True,
                    )
            shutil.rmtree(source)
            base = runs.get("baseline")
            rows = {}
            for variant in variants:
                own = runs[variant["name"]]
                row = summary(own, true_mp) | {"variant": variant, "runs": own}
                if base:  # interleaved pairs: the ratio of each repeat, then the median
                    ratios = [b["seconds"] / r["seconds"] for b, r in zip(base, own, strict=True)]
                    row["speedup_vs_baseline_median"] = statistics.median(ratios)
                    row["speedup_vs_baseline_range"] = [min(ratios), max(ratios)]
                rows[variant["name"]] = row
            results["sizes"][f"{true_mp:.1f}"] = rows
            print(
                table(
                    ["path", "MP", "s (median)", "s (range)", "MP/s", "speed-up", "peak RSS MiB"],
                    [
                        [
                            n,
                            f"{true_mp:.1f}",
                            f"{r['seconds_median']:.1f}",
                            f"{r['seconds_min']:.1f}-{r['seconds_max']:.1f}",
                            f"{r['megapixels_per_s']:.3f}",
                            f"{r['speedup_vs_baseline_median']:.2f}x"
                            if "speedup_vs_baseline_median" in r
                            else "",
                            f"{r['peak_rss_mib']:.0f}",
                        ]
                        for n, r in rows.items()
                    ],
                ),
                flush=True,
            )
    results["machine"]["load_after"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def _dirty() -> bool:
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(status.stdout.strip())


if __name__ == "__main__":
    main()
