"""Zarr prediction speed, this checkout against an older revision, in the same run.

Times ``denoise_zarr`` (CPU preset, the plain prediction path: an untrained network of
the preset's shape with no learned noise model, the path the 0.6 MP/s of
``docs/volumes.md`` measured) on the same input Zarr, each run in a fresh process,
variants interleaved (A B C A B C ...) so a neighbour's load falls on all of them
alike; the median of ``--repeats`` runs per variant. The baseline's source is taken
from git (``git archive --baseline-rev``) into a temporary folder and run with
``PYTHONPATH`` pointing at it; this checkout's ``src`` runs the others.
A variant ``...:posterior=1`` uses a model with a learned noise model instead (a
variance head: ``denoise`` then makes 16 blind-spot passes for the posterior mean).
``--network-3d`` adds the 3-D network alone: the contiguous layout 3-D prediction used
before against the channels-last, fused-decoder one, interleaved in one process.

    python benchmarks/zarr_speed.py                  # 16 MP, 3 repeats, ~8 min on 2 cores
    python benchmarks/zarr_speed.py --megapixels --network-3d \
        --out benchmarks/results/zarr_speed_3d.json  # the 3-D network alone
    python benchmarks/zarr_speed.py --megapixels 1 --variants baseline new \
        baseline:posterior=1 new:posterior=1 --out benchmarks/results/zarr_speed_posterior.json

Prints a markdown table and writes ``benchmarks/results/zarr_speed.json`` (with the
machine's load average before and after each run). Speed-ups are the median of the
per-repeat ratios (baseline / variant, same repeat); beside wall time it records each
run's CPU time, which a busy machine disturbs less. Run it alone for numbers to quote.
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
    """``code[:key=value,...]``: code is ``baseline`` or ``new``; keys workers, chunk,
    posterior (0 or 1)."""
    code, _, rest = text.partition(":")
    if code not in ("baseline", "new"):
        raise SystemExit(f"variant {text!r}: code must be baseline or new")
    variant = {"name": text, "code": code, "workers": 1, "chunk": 1024, "posterior": 0}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in ("workers", "chunk", "posterior"):
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

    start, cpu_start = time.perf_counter(), time.process_time()
    sd.denoise_zarr(
        args.model,
        args.input,
        args.output,
        chunk_size=args.chunk,
        workers=args.workers,
        progress_every=600,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    row = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(row | {"code": sd.__file__}))


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


def run_once(variant: dict, src: Path, models: dict, source: Path, work: Path) -> dict:
    model = models[bool(variant["posterior"])]
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
    kept = {key: row[key] for key in ("seconds", "cpu_seconds", "peak_rss_mib")}
    return kept | {"load_1min": load}


def network_3d(repeats: int) -> dict:
    """The 3-D CPU preset network on one 48x96x96 window: BatchNorm folded in both, the
    contiguous layout 3-D prediction used before, then channels-last, then with the fused
    decoder (the default now); interleaved in one process, median of ``repeats``."""
    import torch

    from semdenoise.config import cpu_unet
    from semdenoise.models.unet import UNet
    from semdenoise.predict.inference import inference_network

    torch.manual_seed(0)
    net = UNet(cpu_unet(dims=3)).eval()
    window = torch.randn(1, 1, 48, 96, 96)
    runners = {
        "contiguous (before)": inference_network(net, channels_last=False),
        "channels-last": inference_network(net, fused_decoder=False),
        "channels-last + fused decoder (now)": inference_network(net),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    with torch.inference_mode():
        for runner in runners.values():
            runner(window)  # warm-up
        for _ in range(max(repeats, 7)):
            for name, runner in runners.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                runner(window)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
    first = "contiguous (before)"
    return {
        name: {
            "seconds": own,
            "cpu_seconds": cpu[name],
            "seconds_median": statistics.median(own),
            "seconds_min": min(own),
            "cpu_seconds_median": statistics.median(cpu[name]),
            "speedup_vs_contiguous": statistics.median(times[first]) / statistics.median(own),
            "min_speedup_vs_contiguous": min(times[first]) / min(own),
            "cpu_speedup_vs_contiguous": statistics.median(cpu[first])
            / statistics.median(cpu[name]),
        }
        for name, own in times.items()
    }


def summary(runs: list[dict], megapixels: float) -> dict:
    seconds = [r["seconds"] for r in runs]
    median = statistics.median(seconds)
    return {
        "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
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
    parser.add_argument(
        "--megapixels", type=float, nargs="*", default=[16.0], help="none: no Zarr runs"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=DEFAULT_VARIANTS,
        help="baseline|new[:workers=N,chunk=C,posterior=1] (default: %(default)s)",
    )
    parser.add_argument(
        "--network-3d",
        action="store_true",
        help="also the 3-D network alone, in-process",
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
    variants = [parse_variant(v) for v in args.variants]
    if args.megapixels and not any(v["code"] == "baseline" for v in variants):
        raise SystemExit("--variants needs a baseline variant to compare with")
    out = args.out or ROOT / "benchmarks" / "results" / "zarr_speed.json"
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
        "model": "CPU preset (depth 3, 16 ch), untrained; posterior=1: with a variance "
        "head and a Gaussian noise model (16 blind-spot passes)",
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
        models = {posterior: work / f"model_{posterior}.pt" for posterior in (False, True)}
        for posterior, path in models.items():
            write_model(path, posterior)
        for megapixels in args.megapixels:
            source = work / "in.zarr"
            side = write_input(source, megapixels)
            true_mp = side * side / 1e6
            runs: dict[str, list[dict]] = {v["name"]: [] for v in variants}
            print(
                f"## {true_mp:.1f} MP ({side}x{side}), {args.repeats} repeats",
                flush=True,
            )
            for repeat in range(args.repeats):
                for variant in variants:
                    row = run_once(variant, sources[variant["code"]], models, source, work)
                    runs[variant["name"]].append(row)
                    print(
                        f"  repeat {repeat + 1} {variant['name']}: {row['seconds']:.1f} s, "
                        f"CPU {row['cpu_seconds']:.1f} s "
                        f"(load {row['load_1min']:.2f})",
                        flush=True,
                    )
            shutil.rmtree(source)
            rows = {}
            for variant in variants:
                own = runs[variant["name"]]
                row = summary(own, true_mp) | {"variant": variant, "runs": own}
                # against the first baseline of the same model; interleaved pairs: the
                # ratio of each repeat, then the median
                base = next(
                    (
                        runs[v["name"]]
                        for v in variants
                        if v["code"] == "baseline" and v["posterior"] == variant["posterior"]
                    ),
                    None,
                )
                if base:
                    ratios = [b["seconds"] / r["seconds"] for b, r in zip(base, own, strict=True)]
                    row["speedup_vs_baseline_median"] = statistics.median(ratios)
                    row["speedup_vs_baseline_range"] = [min(ratios), max(ratios)]
                    row["cpu_speedup_vs_baseline_median"] = statistics.median(
                        b["cpu_seconds"] / r["cpu_seconds"] for b, r in zip(base, own, strict=True)
                    )
                rows[variant["name"]] = row
            results["sizes"][f"{true_mp:.1f}"] = rows
            print(
                table(
                    [
                        "path",
                        "MP",
                        "s (median)",
                        "s (range)",
                        "MP/s",
                        "speed-up",
                        "CPU s (median)",
                        "CPU speed-up",
                        "peak RSS MiB",
                    ],
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
                            f"{r['cpu_seconds_median']:.1f}",
                            f"{r['cpu_speedup_vs_baseline_median']:.2f}x"
                            if "cpu_speedup_vs_baseline_median" in r
                            else "",
                            f"{r['peak_rss_mib']:.0f}",
                        ]
                        for n, r in rows.items()
                    ],
                ),
                flush=True,
            )
    if args.network_3d:
        results["network_3d"] = network_3d(args.repeats)
        print(
            table(
                [
                    "3-D CPU preset, 48x96x96 window",
                    "s (median)",
                    "speed-up",
                    "s (min)",
                    "speed-up (min)",
                    "CPU speed-up",
                ],
                [
                    [
                        n,
                        f"{r['seconds_median']:.2f}",
                        f"{r['speedup_vs_contiguous']:.2f}x",
                        f"{r['seconds_min']:.2f}",
                        f"{r['min_speedup_vs_contiguous']:.2f}x",
                        f"{r['cpu_speedup_vs_contiguous']:.2f}x",
                    ]
                    for n, r in results["network_3d"].items()
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
