"""Training on a Zarr larger than memory: peak memory and speed, streamed and in memory.

1. Writes (once; reused while its size matches) a synthetic uint16 Zarr stack whose
   float32 size is ``--gib`` GiB (default 8: 32 x 8192 x 8192 pixels, 1024² chunks),
   chunk by chunk: bright discs on a gradient plus Gaussian noise. Nothing here ever
   holds the whole array.
2. Trains ``semdenoise train n2v BIG.zarr --steps N`` with the defaults in a fresh
   process (streamed, since the array is over 2 GiB as float32) and reads that process's
   peak resident memory (``os.wait4``), ``--repeats`` times.
3. For scale, in the same run: a small Zarr (``--small-gib``, default 0.25) trained with
   ``--stream`` and with ``--no-stream`` at the same steps and 256² crops: peak memory
   and seconds per step of each.

Prints a markdown table and writes every number to JSON:

    python streamed_training.py --out results/streamed_training.json      # from benchmarks/
    python streamed_training.py --gib 1 --steps 20 --repeats 1            # a smoke check

The data goes to ``--data-dir`` (default: the system's temporary folder), about half the
float32 size on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cli_runs import CLI, recorded_args
from semdenoise.report import markdown_table

SIDE = 8192
CHUNK = 1024


def clean_tile(rng: np.random.Generator, side: int = CHUNK) -> np.ndarray:
    """Discs of varied size and brightness on a gradient, in counts."""
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    tile = 400.0 + 200.0 * xx / side
    for _ in range(40):
        cy, cx, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(6, 40)
        tile += rng.uniform(300, 1500) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return tile


def write_stack(path: Path, slices: int, side: int) -> None:
    """A (slices, side, side) uint16 Zarr written one chunk at a time (resumable: a run
    that stopped leaves a marker per finished slice)."""
    import zarr

    done = path / ".slices-done"
    if not path.exists():
        zarr.open_array(
            str(path), mode="w", shape=(slices, side, side), chunks=(1, CHUNK, CHUNK),
            dtype="uint16",
        )  # fmt: skip
        done.mkdir(parents=True)
    array = zarr.open_array(str(path), mode="r+")
    rng = np.random.default_rng(0)
    tiles = [clean_tile(rng) for _ in range(8)]
    for z in range(slices):
        if (done / str(z)).exists():
            continue
        for y in range(0, side, CHUNK):
            for x in range(0, side, CHUNK):
                tile = tiles[int(rng.integers(len(tiles)))]
                noisy = tile + rng.standard_normal(tile.shape, dtype=np.float32) * 60.0
                array[z, y : y + CHUNK, x : x + CHUNK] = np.clip(noisy, 0, 65535).astype(np.uint16)
        (done / str(z)).touch()


def dataset(data_dir: Path, gib: float) -> Path:
    """The Zarr of ``gib`` GiB as float32 (slices of SIDE², or one smaller square)."""
    pixels = int(gib * 2**30 / 4)
    if pixels >= SIDE * SIDE:
        slices, side = round(pixels / (SIDE * SIDE)), SIDE
    else:
        slices, side = 1, max(CHUNK, int(np.sqrt(pixels)) // CHUNK * CHUNK)
    path = data_dir / f"stack-{slices}x{side}x{side}.zarr"
    started = time.perf_counter()
    write_stack(path, slices, side)
    print(f"{path.name}: {4 * slices * side * side / 2**30:.2f} GiB as float32 "
          f"(ready in {time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return path


def train_once(images: Path, out: Path, steps: int, *extra: str) -> dict:
    """One ``train n2v`` in a fresh process: its seconds, reported steps and peak RSS."""
    command = [*CLI, "train", "n2v", str(images), "--out", str(out), "--steps", str(steps),
               "--no-progress", *extra]  # fmt: skip
    started = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{out.with_suffix('.log').read_text()[-2000:]}")
    import semdenoise as sd

    record = sd.load_model(out).training
    return {
        "seconds": round(seconds, 2),
        "steps": record["steps"],
        "training_seconds": record["seconds"],
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "loading": record["loading"],
    }


def summary(name: str, gib: float, runs: list[dict]) -> dict:
    rss = [run["peak_rss_mib"] for run in runs]
    per_step = [run["training_seconds"] / run["steps"] for run in runs]
    return {
        "path": name,
        "float32_gib": round(gib, 2),
        "runs": runs,
        "peak_rss_mib_median": statistics.median(rss),
        "peak_rss_mib_range": [min(rss), max(rss)],
        "seconds_per_step_median": round(statistics.median(per_step), 3),
        "seconds_per_step_range": [round(min(per_step), 3), round(max(per_step), 3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=8.0, help="float32 size of the large Zarr")
    parser.add_argument("--small-gib", type=float, default=0.25)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "semdenoise-streamed"
    )
    parser.add_argument("--out", type=Path, default=Path("results/streamed_training.json"))
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    large, small = dataset(args.data_dir, args.gib), dataset(args.data_dir, args.small_gib)
    work = Path(tempfile.mkdtemp(prefix="streamed-models-"))
    rows, results = [], []
    plans = [
        (f"{large.name}, defaults (streamed: over 2 GiB)", large, args.gib, ())
        if args.gib > 2
        else (f"{large.name}, --stream", large, args.gib, ("--stream",)),
        (f"{small.name}, --stream", small, args.small_gib, ("--stream", "--crop-size", "256")),
        (
            f"{small.name}, --no-stream",
            small,
            args.small_gib,
            ("--no-stream", "--crop-size", "256"),
        ),
    ]
    runs: dict[str, list[dict]] = {name: [] for name, *_ in plans}
    for repeat in range(args.repeats):  # interleaved, so a change in load hits every path
        for k, (name, images, _, extra) in enumerate(plans):
            run = train_once(images, work / f"model-{k}-{repeat}.pt", args.steps, *extra)
            runs[name].append(run)
            print(f"{name}: {run}", flush=True)
    for name, _, gib, _ in plans:
        result = summary(name, gib, runs[name])
        results.append(result)
        rows.append(
            {
                "training data": name,
                "float32 GiB": f"{gib:.2f}",
                "steps": args.steps,
                "peak RSS MiB (median)": f"{result['peak_rss_mib_median']:.0f}",
                "range": "{:.0f}–{:.0f}".format(*result["peak_rss_mib_range"]),
                "s/step (median)": f"{result['seconds_per_step_median']:.3f}",
            }
        )
    table = markdown_table(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "args": recorded_args(args),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "results": results,
        "table": table,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
