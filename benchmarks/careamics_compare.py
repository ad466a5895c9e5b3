"""CAREamics Noise2Void and semdenoise side by side: same images, same noise, same
optimiser steps, same CPU threads, one run.

Data (the protocols of ``public_denoising.py``, whose loader this reuses):

* ``em``: Lucchi EM, Gaussian noise sigma 25 (0–255, not clipped); trained on the 20
  noisy training-stack slices, scored on 512x512 crops of the 10 noisy testing-stack
  slices, which training never saw.
* ``fmd``: FMD confocal BPAE, real noise; trained on the raw captures of fields 1–18
  and 20, scored on field 20's first capture against its 50-capture average (field 19,
  the standard test field, is not in ``shared/``).
* ``bsd``: the 400 BSD training crops with Gaussian noise sigma 25; scored on Set12.

The budget is the same number of optimiser steps for both, each library with its own
defaults as a new user gets them: CAREamics' N2V (``careamics_worker.py``: 64x64
patches, batch 16, its UNet of depth 2 and 32 channels, 0.2 % masked pixels) and
semdenoise's ``train_n2v`` with no option but the steps and seed (whole images, batch 1,
grid masking, learned noise model, no sigma given). The two see different numbers of
pixels per step, so wall-clock training and prediction seconds are reported too, with
their ratio. Both run with the same torch thread count, one after the other.

CAREamics 0.3.5 runs in its own venv (``.careamics-venv`` beside this file, made on
first use: torch 2.13.0 CPU first, then careamics with ``--no-deps``, its frozen
dependencies from ``careamics_env/requirements.txt`` with ``--no-deps``, and the
torch-only ``careamics_env/torchvision`` stand-in, whose docstring says why).

Run from inside ``benchmarks/`` (it imports its siblings), with the project's venv; the
documented table (docs/benchmarks.md) came from these two runs, then one table of both:

    python careamics_compare.py --data bsd --steps 100 --seeds 1 2 \
        --out results/careamics/compare_100steps_bsd.json
    python careamics_compare.py --data fmd em --steps 100 --seeds 1 \
        --out results/careamics/compare_100steps_fmd_em.json
    python careamics_compare.py --table-from results/careamics/compare_100steps_*.json

``--quick`` is a smoke run (10 steps, one seed, 4 training and 2 test images).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

import semdenoise as sd
from denoiser_defaults import oracle_blur
from public_denoising import load
from semdenoise.evaluation.intervals import add_intervals, separable_from_best, with_interval
from semdenoise.evaluation.metrics import psnr, ssim
from semdenoise.report import markdown_table

HERE = Path(__file__).resolve().parent
VENV = HERE / ".careamics-venv"
ENV_FILES = HERE / "careamics_env"
TORCH = "torch==2.13.0"  # the CPU build pip finds on this machine; installed first
CAREAMICS = "careamics==0.3.5"
OURS = "semdenoise (defaults)"
THEIRS = "CAREamics N2V (defaults)"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Make the CAREamics venv unless it is there and imports careamics; its python."""
    python = venv_python()
    check = [str(python), "-c", "import careamics, torchvision; print(careamics.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"making the CAREamics venv in {VENV.name}/ (a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # torch first, so that nothing after it can pull another build (a CUDA one)
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, "--no-deps", CAREAMICS], check=True)
    subprocess.run([*pip, "--no-deps", "-r", str(ENV_FILES / "requirements.txt")], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copytree(ENV_FILES / "torchvision", Path(site) / "torchvision", dirs_exist_ok=True)
    subprocess.run(check, check=True)
    return python


def scores_per_image(clean: list[np.ndarray], images: list[np.ndarray]) -> list[dict]:
    return [
        {
            "image": i,
            "PSNR": float(psnr(c, d, data_range=255)),
            "SSIM": float(ssim(c, d, data_range=255)),
        }
        for i, (c, d) in enumerate(zip(clean, images, strict=True))
    ]


def run_careamics(python, train_images, noisy, *, steps, seed, batch, patch, threads, work):
    """Train and predict in the CAREamics venv; (denoised images, the worker's record)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "train.npy", np.stack(train_images).astype(np.float32))
    predict = []
    for i, image in enumerate(noisy):
        predict.append(str(work / f"noisy_{i:03d}.npy"))
        np.save(predict[-1], image.astype(np.float32))
    job = {
        "train": str(work / "train.npy"),
        "predict": predict,
        "out_dir": str(work / "denoised"),
        "work_dir": str(work / "careamics"),
        "steps": steps,
        "seed": seed,
        "batch_size": batch,
        "patch_size": patch,
        "threads": threads,
    }
    (work / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)  # the CAREamics venv must not see semdenoise's paths
    started = time.perf_counter()
    with open(work / "worker.log", "w") as log:
        done = subprocess.run(
            [
                str(python),
                str(HERE / "careamics_worker.py"),
                str(work / "job.json"),
                str(work / "result.json"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if done.returncode != 0:
        tail = (work / "worker.log").read_text()[-3000:]
        raise SystemExit(f"CAREamics worker failed ({done.returncode}):\n{tail}")
    record = json.loads((work / "result.json").read_text())
    record["process seconds"] = round(time.perf_counter() - started, 1)
    denoised = [np.load(p) for p in record.pop("predictions")]
    return denoised, record


def run_ours(train_images, noisy, *, steps, seed):
    started = time.perf_counter()
    model = sd.train_n2v(train_images, train=sd.TrainConfig(steps=steps, seed=seed))
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    denoised = [sd.denoise(model, n) for n in noisy]
    record = {
        "train seconds": round(train_seconds, 2),
        "training loop seconds": round(model.training["seconds"], 2),
        "predict seconds": round(time.perf_counter() - started, 2),
        "steps": model.training["steps"],
        "noise model": model.training.get("noise_model"),
        "unet": model.denoiser.config.model_dump(),
    }
    return denoised, record


def seed_means(runs: list[dict]) -> list[dict]:
    """Per-image rows of one method: each image's scores averaged over its seeds."""
    return [
        {
            "method": runs[0]["method"],
            "image": i,
            **{s: float(np.mean([r["per image"][i][s] for r in runs])) for s in ("PSNR", "SSIM")},
        }
        for i in range(len(runs[0]["per image"]))
    ]


def scored(summary: list[dict], per_image: list[dict]) -> list[dict]:
    """Each summary row gets its mean PSNR/SSIM over images and, with more than one
    image, a 95 % bootstrap interval over them."""
    for entry in summary:
        rows = [r for r in per_image if r["method"] == entry["method"]]
        entry["PSNR"] = float(np.mean([r["PSNR"] for r in rows]))
        entry["SSIM"] = float(np.mean([r["SSIM"] for r in rows]))
    if len({r["image"] for r in per_image}) > 1:
        add_intervals(summary, per_image)
    return summary


def summarise_reference(data: str, reference_rows: dict[str, list[dict]]) -> list[dict]:
    """Table rows of the noisy input and the oracle blur (name -> per-image scores)."""
    per_image = [{"method": name, **row} for name, rows in reference_rows.items() for row in rows]
    summary = [{"data": data, "method": name} for name in reference_rows]
    return scored(summary, per_image)


def summarise_runs(data: str, runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Table rows of CAREamics and ours on one data set (seeds pooled), and the paired
    ours − CAREamics differences."""
    per_image, summary = [], []
    for method in (THEIRS, OURS):
        mine = [r for r in runs if r["data"] == data and r["method"] == method]
        if not mine:
            continue
        per_image += seed_means(mine)
        summary.append(
            {
                "data": data,
                "method": method,
                "seeds": [r["seed"] for r in mine],
                "PSNR per seed": [round(r["PSNR"], 2) for r in mine],
                "train s": statistics.median(r["train seconds"] for r in mine),
                "predict s": statistics.median(r["predict seconds"] for r in mine),
                "steps": mine[0]["steps"],
                "pixels per step": mine[0]["pixels per step"],
            }
        )
    scored(summary, per_image)
    several = len({r["image"] for r in per_image}) > 1
    return summary, paired(summary, per_image) if several and len(summary) == 2 else []


def paired(summary: list[dict], per_image: list[dict]) -> list[dict]:
    """Ours against CAREamics alone: the paired bootstrap over test images of the
    difference of their seed-averaged scores (intervals.separable_from_best)."""
    pair = (OURS, THEIRS)
    return separable_from_best(
        [e for e in summary if e["method"] in pair],
        [r for r in per_image if r["method"] in pair],
        scores=("PSNR", "SSIM"),
    )


def print_differences(differences: list[dict]) -> None:
    for d in differences:
        low, high = d["interval"]
        print(
            f"{d['data']} {d['score']}: {d['best']} ahead of {d['method']} by "
            f"{d['difference']:.3f} (paired 95 % bootstrap {low:.3f}–{high:.3f})"
        )


def table(summary: list[dict]) -> str:
    rows = []
    for data in dict.fromkeys(e["data"] for e in summary):
        entries = [e for e in summary if e["data"] == data]
        theirs = next((e for e in entries if e["method"] == THEIRS), None)
        for e in entries:
            row = {
                "data": data,
                "method": e["method"],
                "PSNR": with_interval(e["PSNR"], e.get("PSNR CI")),
                "SSIM": with_interval(e["SSIM"], e.get("SSIM CI")),
                "PSNR per seed": " / ".join(f"{v:.2f}" for v in e.get("PSNR per seed", [])),
                "train s": f"{e['train s']:.0f}" if "train s" in e else "",
                "predict s": f"{e['predict s']:.1f}" if "predict s" in e else "",
            }
            if theirs and "train s" in e and e["method"] != THEIRS:
                row["train time ours/CAREamics"] = f"{e['train s'] / theirs['train s']:.1f}x"
                row["predict time ours/CAREamics"] = (
                    f"{e['predict s'] / max(theirs['predict s'], 1e-9):.1f}x"
                )
            rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return markdown_table(rows, columns)


def write(path: Path, args, summary, differences, runs, minutes: float, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "versions": {
            "semdenoise torch": torch.__version__,
            "careamics": next((r["careamics"] for r in runs if "careamics" in r), None),
            "careamics torch": next((r["torch"] for r in runs if "torch" in r), None),
            "python": sysconfig.get_python_version(),
        },
        "minutes": round(minutes, 1),
        "summary": summary,
        "paired differences": differences,
        "runs": runs,
        "table": text,
    }
    path.write_text(json.dumps(record, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", nargs="+", choices=["em", "fmd", "bsd"], default=["em", "fmd", "bsd"]
    )
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps for both")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[1, 2],
        help="training seeds, >= 1 (CAREamics refuses 0)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both")
    parser.add_argument(
        "--careamics-steps",
        type=int,
        help="CAREamics' steps when they should differ from --steps (an equal-time run)",
    )
    parser.add_argument("--careamics-batch", type=int, default=16)
    parser.add_argument("--careamics-patch", type=int, default=64)
    parser.add_argument(
        "--methods", nargs="+", choices=["careamics", "ours"], default=["careamics", "ours"]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 10 steps, one seed, 4 training and 2 test images",
    )
    parser.add_argument("--keep", type=Path, help="keep the CAREamics worker's files here")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--table-from", type=Path, nargs="+", help="print one table from earlier --out files"
    )
    args = parser.parse_args()
    if args.table_from:
        records = [json.loads(p.read_text()) for p in args.table_from]
        runs = [run for r in records for run in r["runs"]]
        summary, differences = [], []
        for data in dict.fromkeys(run["data"] for run in runs):
            # the reference rows are the same in every run (fixed noise): take the first
            first = next(r for r in records if any(e["data"] == data for e in r["summary"]))
            summary += [
                e
                for e in first["summary"]
                if e["data"] == data and e["method"] not in (OURS, THEIRS)
            ]
            rows, diffs = summarise_runs(data, runs)
            summary += rows
            differences += [{"data": data, **d} for d in diffs]
        print(table(summary))
        if args.out:
            minutes = sum(r["minutes"] for r in records)  # the runs' own, added up
            write(args.out, args, summary, differences, runs, minutes, table(summary))
        print_differences(differences)
        return
    if args.quick:
        args.steps, args.seeds = 10, args.seeds[:1]
    if min(args.seeds) < 1:
        parser.error("--seeds: CAREamics takes seeds >= 1")
    torch.set_num_threads(args.threads)
    python = ensure_venv() if "careamics" in args.methods else None
    started_all = time.perf_counter()
    summary, differences, runs = [], [], []
    scratch = tempfile.TemporaryDirectory(prefix="careamics_compare_")
    work_root = args.keep or Path(scratch.name)
    for data in args.data:
        train_images, noisy, clean, _ = load(data, None)
        if args.quick:
            train_images, noisy, clean = train_images[:4], noisy[:2], clean[:2]
        reference = {"noisy": scores_per_image(clean, noisy)}
        blur = oracle_blur(clean, noisy)
        blurred = [gaussian_filter(n, blur["width"]) for n in noisy]
        reference[f"Gaussian blur, best width {blur['width']} (oracle)"] = scores_per_image(
            clean, blurred
        )
        data_runs = []
        for seed in args.seeds:
            if "careamics" in args.methods:
                denoised, record = run_careamics(
                    python,
                    train_images,
                    noisy,
                    steps=args.careamics_steps or args.steps,
                    seed=seed,
                    batch=args.careamics_batch,
                    patch=args.careamics_patch,
                    threads=args.threads,
                    work=work_root / f"{data}_seed{seed}",
                )
                record["pixels per step"] = args.careamics_batch * args.careamics_patch**2
                data_runs.append({"data": data, "method": THEIRS, "seed": seed, **record})
                data_runs[-1]["per image"] = scores_per_image(clean, denoised)
            if "ours" in args.methods:
                denoised, record = run_ours(train_images, noisy, steps=args.steps, seed=seed)
                record["pixels per step"] = int(np.median([t.size for t in train_images]))
                data_runs.append({"data": data, "method": OURS, "seed": seed, **record})
                data_runs[-1]["per image"] = scores_per_image(clean, denoised)
            for run in data_runs[-len(args.methods) :]:
                run["PSNR"] = float(np.mean([s["PSNR"] for s in run["per image"]]))
                run["SSIM"] = float(np.mean([s["SSIM"] for s in run["per image"]]))
                brief = {
                    k: run[k]
                    for k in (
                        "data",
                        "method",
                        "seed",
                        "PSNR",
                        "SSIM",
                        "train seconds",
                        "predict seconds",
                        "steps",
                    )
                }
                print(brief, flush=True)
            # after each seed, so that a long run that is stopped leaves what it finished
            rows, diffs = summarise_runs(data, data_runs)
            rows = summarise_reference(data, reference) + rows
            minutes = (time.perf_counter() - started_all) / 60
            text = table(summary + rows)
            if args.out:
                done = differences + [{"data": data, **d} for d in diffs]
                write(args.out, args, summary + rows, done, runs + data_runs, minutes, text)
        summary += rows
        differences += [{"data": data, **d} for d in diffs]
        runs += data_runs
    print(text)
    print_differences(differences)
    print(f"whole run: {minutes:.1f} minutes")
    scratch.cleanup()


if __name__ == "__main__":
    main()
