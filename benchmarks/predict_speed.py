"""Prediction speed on this CPU: throughput, memory, optimisations, and the ceiling.

Prints markdown tables and writes every number to JSON. Sections, all in one run:

1. the CPU's sustained GFLOP/s for a large matmul and for 3x3 convolutions at the
   network's channel widths (the ceiling), and each network's FLOPs per megapixel;
2. the optimisation ladder on one image (median of ``--repeats`` runs): plain network
   on one thread, then two threads, channels-last, BatchNorm folded, fused decoder;
   then tile size, window batching and bfloat16 (with its PSNR change) on the result;
3. megapixels/s and peak RSS against image size (1, 16, 64 and, with ``--with-256``,
   256 megapixels), each size in its own process; the large ones through Zarr + Dask,
   with an input Zarr written chunk by chunk so nothing holds the whole image;
4. training images/s, BM3D on the same machine, and whether CAREamics can be compared.

    .venv/bin/python benchmarks/predict_speed.py --quick          # a few minutes
    .venv/bin/python benchmarks/predict_speed.py --with-256       # the full table

Run it alone: on 2 cores any other torch job halves every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import semdenoise as sd
from semdenoise.evaluation.metrics import psnr
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.predict.inference import conv_flops_per_pixel, inference_network
from semdenoise.predict.tiling import predict_tiled

NETWORKS = {
    "default (depth 2, 32 ch)": sd.UNetConfig(depth=2, base_channels=32),
    "CPU preset (depth 3, 16 ch)": sd.UNetConfig(depth=3, base_channels=16, residual=False),
}
SCALING_NETWORK = "CPU preset (depth 3, 16 ch)"


def timed(function, repeats: int) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def blobs(shape: tuple[int, int], rng: np.random.Generator, n: int = 40) -> np.ndarray:
    """Bright discs on a gradient: a clean image with structure, any size."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    clean = 20.0 + 10.0 * xx / shape[1]
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(3, 12)
        clean += 100.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return clean.astype(np.float32)


# ---------------------------------------------------------------- 1. ceiling, FLOPs
def ceiling(repeats: int) -> dict:
    """Sustained GFLOP/s: a 2048^3 matmul, and 3x3 convs (channels-last) at our widths."""
    result: dict = {}
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    with torch.inference_mode():
        seconds = timed(lambda: torch.matmul(a, b), repeats)
        result["matmul 2048^3"] = 2 * 2048**3 / seconds / 1e9
        for channels, side in ((32, 512), (64, 362), (128, 256)):
            x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last)
            w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=torch.channels_last)
            seconds = timed(lambda x=x, w=w: F.conv2d(x, w, padding=1), repeats)
            flops = 2 * channels * channels * 9 * side * side
            result[f"conv3x3 {channels}->{channels}"] = flops / seconds / 1e9
    return result


# ----------------------------------------------------------- 2. optimisation ladder
def ladder(config: sd.UNetConfig, image: np.ndarray, repeats: int) -> dict:
    """Seconds for one image, each step adding one optimisation to the previous."""
    torch.manual_seed(0)
    net = UNet(config).eval()
    threads = torch.get_num_threads()
    steps = [
        ("plain, 1 thread", {"fold": False, "channels_last": False}, 1),
        ("+ all threads", {"fold": False, "channels_last": False}, threads),
        ("+ channels-last", {"fold": False, "fused_decoder": False}, threads),
        ("+ BatchNorm folded", {"fused_decoder": False}, threads),
        ("+ fused upsample/concat", {}, threads),
    ]
    rows = {}
    for name, options, count in steps:
        runner = inference_network(net, **options)
        torch.set_num_threads(count)
        rows[name] = timed(lambda runner=runner: predict_tiled(runner, image), repeats)
    torch.set_num_threads(threads)
    fast = inference_network(net)
    for tile in (256, 512, 1024, 2048):
        rows[f"tile {tile}"] = timed(
            lambda tile=tile: predict_tiled(fast, image, tile_size=tile), repeats
        )
    rows["tile 512, one window per pass"] = timed(
        lambda: predict_tiled(fast, image, tile_size=512, batch_size=1), repeats
    )
    return rows


def bfloat16_check(model: TrainedModel, noisy: np.ndarray, clean: np.ndarray):
    """Speed and PSNR of bfloat16 against float32, same trained model, same image."""
    net = model.denoiser
    normalized = model.normalization.normalize(noisy)
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        runner = inference_network(net, dtype=dtype)
        start = time.perf_counter()  # once: bfloat16 is slow where the CPU lacks it
        predicted = predict_tiled(runner, normalized)
        seconds = time.perf_counter() - start
        denoised = model.normalization.denormalize(predicted)
        out[name] = {
            "seconds": seconds,
            "psnr": psnr(clean, denoised, data_range=float(clean.max() - clean.min())),
        }
    return out


# ------------------------------------------------------------- 3. size scaling
def child(args: argparse.Namespace) -> None:
    """One size in its own process; prints one JSON line with time and peak RSS."""
    torch.set_num_threads(args.threads)
    model = sd.load_model(args.model)
    side = int(round((args.megapixels * 1e6) ** 0.5))
    work = Path(args.work)
    rng = np.random.default_rng(0)
    if args.mode == "memory":
        noisy = blobs((side, side), rng, n=200) + rng.normal(0, 15, (side, side)).astype(np.float32)
        start = time.perf_counter()
        sd.denoise(model, noisy)
        seconds = time.perf_counter() - start
    else:
        import zarr

        source = work / f"in_{args.megapixels}.zarr"
        chunk = 1024
        array = zarr.create_array(
            store=str(source), shape=(side, side), chunks=(chunk, chunk), dtype="uint16"
        )
        tile = (blobs((chunk, chunk), rng) + 0.5).astype(np.float32)
        for y in range(0, side, chunk):  # chunk by chunk: never the whole image
            for x in range(0, side, chunk):
                h, w = min(chunk, side - y), min(chunk, side - x)
                noisy = tile[:h, :w] + rng.normal(0, 15, (h, w)).astype(np.float32)
                array[y : y + h, x : x + w] = np.clip(noisy, 0, None).astype(np.uint16)
        start = time.perf_counter()
        sd.denoise_zarr(model, source, work / f"out_{args.megapixels}.zarr", progress_every=60)
        seconds = time.perf_counter() - start
    peak_kib = peak_rss_kib()
    result = {"megapixels": side * side / 1e6, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}
    print(json.dumps(result))


def peak_rss_kib() -> int:
    """This process's peak resident memory. ``VmHWM`` where Linux has it: ``ru_maxrss``
    can carry over the parent's peak through fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def scaling(model_path: Path, sizes: list[tuple[float, str]], work: Path) -> list[dict]:
    rows = []
    for megapixels, mode in sizes:
        command = [
            sys.executable,
            __file__,
            "--child",
            "--model",
            str(model_path),
            "--megapixels",
            str(megapixels),
            "--mode",
            mode,
            "--work",
            str(work),
            "--threads",
            str(torch.get_num_threads()),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"size {megapixels} MP failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row |= {"mode": mode, "megapixels_per_s": row["megapixels"] / row["seconds"]}
        rows.append(row)
        print(
            f"  {row['megapixels']:.1f} MP ({mode}): {row['megapixels_per_s']:.3f} MP/s, "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        for leftover in work.glob("*.zarr"):
            shutil.rmtree(leftover)
    return rows


def scaling_rows(rows: list[dict]) -> str:
    return table(
        ["megapixels", "path", "s", "MP/s", "peak RSS (MiB)"],
        [
            [
                f"{r['megapixels']:.1f}",
                "in memory" if r["mode"] == "memory" else "Zarr + Dask",
                f"{r['seconds']:.1f}",
                f"{r['megapixels_per_s']:.3f}",
                f"{r['peak_rss_mib']:.0f}",
            ]
            for r in rows
        ],
    )


def scaling_only(args: argparse.Namespace) -> None:
    """The size table alone, with an untrained network (speed does not depend on weights)."""
    torch.manual_seed(0)
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": UNet(NETWORKS[SCALING_NETWORK]).eval()},
        normalization=Normalization(mean=50.0, std=30.0),
    )
    sizes = [(mp, "zarr") for mp in (args.sizes or [256.0])]
    with tempfile.TemporaryDirectory() as work:
        model_path = Path(work) / "model.pt"
        sd.save_model(model, model_path)
        rows = scaling(model_path, sizes, Path(work))
    print(scaling_rows(rows))
    out = args.out or Path(__file__).parent / "results" / "predict_speed_scaling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    out.write_text(json.dumps({"command": command, "scaling": rows}, indent=2) + "\n")
    print(f"wrote {out}")


# ----------------------------------------------------- 4. training, BM3D, CAREamics
def train_and_time(config: sd.UNetConfig, images: np.ndarray, steps: int) -> tuple:
    train = sd.TrainConfig(steps=steps, val_fraction=0.0, learning_rate=1e-3, seed=0)
    start = time.perf_counter()
    model = sd.train_n2v(images, unet=config, train=train, progress=False)
    seconds = time.perf_counter() - start
    images_seen = steps * (train.batch_size or 1)
    return model, images_seen / seconds


def bm3d_seconds_per_mp(noisy: np.ndarray, sigma: float) -> float:
    import bm3d

    start = time.perf_counter()
    bm3d.bm3d(noisy, sigma_psd=sigma)
    return (time.perf_counter() - start) / (noisy.size / 1e6)


def careamics_status() -> str:
    try:
        import careamics  # noqa: F401
    except ImportError:
        return (
            "not installed: careamics 0.3.5 requires torchvision (and pins lightning, "
            "tifffile, numpy), which cannot be installed beside this CPU torch; not compared"
        )
    return "installed, but no comparison implemented"


# ------------------------------------------------------------------------ main
def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--with-256", action="store_true", help="also 256 MP (~10+ min)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--ladder-side", type=int, default=None, help="image side, ladder")
    parser.add_argument("--sizes", type=float, nargs="*", help="Zarr sizes in megapixels")
    parser.add_argument(
        "--scaling-only", action="store_true", help="only the size table (untrained network)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--megapixels", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.scaling_only:
        scaling_only(args)
        return
    quick = args.quick
    repeats = args.repeats or (2 if quick else 3)
    side = args.ladder_side or (512 if quick else 1024)
    out = args.out or Path(__file__).parent / "results" / (
        "predict_speed_quick.json" if quick else "predict_speed.json"
    )
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    rng = np.random.default_rng(0)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section, so a late failure loses nothing
        out.write_text(json.dumps(results, indent=2) + "\n")

    print("## CPU ceiling (sustained GFLOP/s)", flush=True)
    results["ceiling_gflops"] = ceiling(repeats)
    print(
        table(
            ["kernel", "GFLOP/s"], [[k, f"{v:.1f}"] for k, v in results["ceiling_gflops"].items()]
        )
    )
    best = max(results["ceiling_gflops"].values())

    flops = {name: conv_flops_per_pixel(UNet(c)) * 1e6 / 1e9 for name, c in NETWORKS.items()}
    results["gflop_per_megapixel"] = flops

    save()
    print(f"\n## Optimisation ladder ({side}x{side} image, median of {repeats})", flush=True)
    image = rng.normal(size=(side, side)).astype(np.float32)
    megapixels = image.size / 1e6
    results["ladder"] = {}
    for name, config in NETWORKS.items():
        rows = ladder(config, image, repeats)
        results["ladder"][name] = rows
        plain = rows["plain, 1 thread"]
        print(f"\n{name}: {flops[name]:.1f} GFLOP per megapixel")
        print(
            table(
                ["variant", "s", "MP/s", "speed-up vs plain", "GFLOP/s", "of ceiling"],
                [
                    [
                        k,
                        f"{s:.2f}",
                        f"{megapixels / s:.3f}",
                        f"{plain / s:.2f}x",
                        f"{flops[name] * megapixels / s:.1f}",
                        f"{flops[name] * megapixels / s / best:.0%}",
                    ]
                    for k, s in rows.items()
                ],
            ),
            flush=True,
        )

    save()
    print("\n## Training (N2V, 256x256 images) and bfloat16", flush=True)
    clean = np.stack([blobs((256, 256), rng, n=12) for _ in range(8)])
    noisy = clean + rng.normal(0, 15, clean.shape).astype(np.float32)
    results["training_images_per_s"] = {}
    trained = {}
    for name, config in NETWORKS.items():
        model, rate = train_and_time(config, noisy, steps=10 if quick else 60)
        trained[name] = model
        results["training_images_per_s"][name] = rate
        print(f"  {name}: {rate:.2f} images/s", flush=True)
    big_clean = blobs((1024, 1024), rng, n=150)
    big_noisy = big_clean + rng.normal(0, 15, big_clean.shape).astype(np.float32)
    results["bfloat16"] = {}
    for name, model in trained.items():
        check = bfloat16_check(model, big_noisy, big_clean)
        results["bfloat16"][name] = check
        f32, b16 = check["float32"], check["bfloat16"]
        print(
            f"  {name}: float32 {f32['seconds']:.2f} s {f32['psnr']:.3f} dB, bfloat16 "
            f"{b16['seconds']:.2f} s {b16['psnr']:.3f} dB "
            f"(speed-up {f32['seconds'] / b16['seconds']:.2f}x, "
            f"PSNR change {b16['psnr'] - f32['psnr']:+.3f} dB)",
            flush=True,
        )

    save()
    print(f"\n## Size scaling ({SCALING_NETWORK}, each size in its own process)", flush=True)
    zarr_sizes = args.sizes or ([1.0, 16.0] if quick else [1.0, 16.0, 64.0])
    if args.with_256:
        zarr_sizes.append(256.0)
    sizes = [(zarr_sizes[0], "memory")] + [(mp, "zarr") for mp in zarr_sizes]
    with tempfile.TemporaryDirectory() as work:
        model_path = Path(work) / "model.pt"
        sd.save_model(trained[SCALING_NETWORK], model_path)
        results["scaling"] = scaling(model_path, sizes, Path(work))
    print(scaling_rows(results["scaling"]))
    save()
    print("\n## Other methods on this machine", flush=True)
    bm3d_side = 256 if quick else 512
    bm3d_rate = bm3d_seconds_per_mp(big_noisy[:bm3d_side, :bm3d_side], 15.0)
    ours = results["scaling"][0]["megapixels_per_s"]
    results["bm3d"] = {
        "image": f"{bm3d_side}x{bm3d_side}",
        "seconds_per_megapixel": bm3d_rate,
        "ours_seconds_per_megapixel": 1 / ours,
        "speed_ratio": bm3d_rate * ours,
    }
    results["careamics"] = careamics_status()
    print(
        f"  BM3D ({bm3d_side}x{bm3d_side}): {bm3d_rate:.1f} s/MP; ours {1 / ours:.2f} s/MP "
        f"({SCALING_NETWORK}): {bm3d_rate * ours:.0f}x faster"
    )
    print(f"  CAREamics: {results['careamics']}")

    save()
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
