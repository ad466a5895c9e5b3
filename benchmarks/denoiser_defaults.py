"""Which N2V settings should be the defaults: a sweep on development data of three kinds.

Every variant trains for a fixed number of optimiser steps (so the ranking does not
depend on the machine's load) and is scored on development images only, never on a
standard test set:

* ``em``: Lucchi EM training-stack slices 0–9 with Gaussian noise sigma 25 (0–255, not
  clipped) to train on; 512x512 crops of training-stack slices 10–19 (noisy the same
  way) to score.
* ``bsd``: the 400 BSD training crops with Gaussian noise sigma 25 to train on; Set12
  (noisy the same way) to score, the protocol of ``../shared/data/README.md``.
* ``fmd``: FMD confocal BPAE raw captures of fields 1–18 (real Poisson–Gaussian noise)
  to train on; the first raw capture of fields 13–18 scored against their 50-capture
  average.

Each variant is a named set of overrides of the library's configs. Seconds per step are
measured in the same run, so equal-CPU-time comparisons can be read off
(steps x seconds per step); they depend on the machine, the PSNR at fixed steps does not.
The baseline row is a Gaussian blur whose width is chosen with the clean images (an
oracle no user has). Prints a markdown table and writes JSON.

    python benchmarks/denoiser_defaults.py --data em --steps 300 \
        --variants paper cpu cpu-dense16 --out benchmarks/results/defaults_em.json
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

import semdenoise as sd
from semdenoise.evaluation.metrics import psnr, ssim
from semdenoise.report import markdown_table

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NOISE_SEED = 2024

# name -> overrides by section (unet, masking, train); unnamed fields keep defaults.
VARIANTS: dict[str, dict[str, dict]] = {
    "defaults": {},
    "paper": {
        "unet": {"depth": 2, "base_channels": 32, "residual": True},
        "train": {"learning_rate": 4e-4},
    },
    "cpu": {
        "unet": {"depth": 3, "base_channels": 16, "residual": False},
        "train": {"learning_rate": 1e-3},
    },
}
for _cells in (64, 25, 16, 9):
    VARIANTS[f"cpu-dense{_cells}"] = {
        **VARIANTS["cpu"],
        "masking": {"pixels_per_mask": float(_cells)},
    }
for _crop, _batch in ((128, 4), (256, 1), (96, 8)):
    VARIANTS[f"cpu-dense25-crop{_crop}x{_batch}"] = {
        **VARIANTS["cpu-dense25"],
        "train": {**VARIANTS["cpu"]["train"], "crop_size": _crop, "batch_size": _batch},
    }


def add_noise(clean: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(NOISE_SEED)
    return (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)


def load(data: str) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(training images, noisy development images, their clean references)."""
    if data == "em":
        stack = tifffile.imread(SHARED / "lucchi_em" / "train_images.tif").astype(np.float32)
        noisy = add_noise(stack, 25.0)
        crop = (slice(128, 640), slice(256, 768))
        return list(noisy[:10]), [n[crop] for n in noisy[10:]], [c[crop] for c in stack[10:]]
    if data == "bsd":
        folder = SHARED / "bsd_natural"
        train = add_noise(tifffile.imread(folder / "train400.tif").astype(np.float32), 25.0)
        clean = [tifffile.imread(p).astype(np.float32) for p in sorted(folder.glob("set12/*.tif"))]
        rng = np.random.default_rng(NOISE_SEED + 1)
        noisy = [(c + rng.normal(0, 25.0, c.shape)).astype(np.float32) for c in clean]
        return list(train), noisy, clean
    if data == "fmd":
        folder = SHARED / "fmd_confocal_bpae_b"
        raw = {
            f: tifffile.imread(folder / f"fov{f:02d}_raw.tif").astype(np.float32)
            for f in range(1, 19)
        }
        train = [capture for f in raw for capture in raw[f]]
        dev = range(13, 19)
        clean = [tifffile.imread(folder / f"fov{f:02d}_gt.tif").astype(np.float32) for f in dev]
        return train, [raw[f][0] for f in dev], clean
    raise SystemExit(f"unknown data {data!r}")


def scores(clean: list[np.ndarray], images: list[np.ndarray]) -> dict[str, float]:
    pairs = list(zip(clean, images, strict=True))
    return {
        "PSNR": round(float(np.mean([psnr(c, i, data_range=255) for c, i in pairs])), 3),
        "SSIM": round(float(np.mean([ssim(c, i, data_range=255) for c, i in pairs])), 4),
    }


def oracle_blur(clean: list[np.ndarray], noisy: list[np.ndarray]) -> dict:
    best = None
    for width in np.arange(0.4, 3.01, 0.1):
        row = scores(clean, [gaussian_filter(n, width) for n in noisy])
        if best is None or row["PSNR"] > best["PSNR"]:
            best = {**row, "width": round(float(width), 1)}
    return best


# short keys of a variant spec such as "cpu-dense25,residual=1,lr=2e-3:1400"
KEYS = {
    "depth": ("unet", "depth", int),
    "channels": ("unet", "base_channels", int),
    "residual": ("unet", "residual", lambda v: bool(int(v))),
    "blur": ("unet", "blur_pool", lambda v: bool(int(v))),
    "topskip": ("unet", "top_skip", lambda v: bool(int(v))),
    "blindfilter": ("unet", "blind_filter", int),
    "lr": ("train", "learning_rate", float),
    "crop": ("train", "crop_size", int),
    "batch": ("train", "batch_size", int),
    "objective": ("masking", "objective", str),
    "ppm": ("masking", "pixels_per_mask", float),
    "replacement": ("masking", "replacement", str),
    "radius": ("masking", "radius", int),
    "noise": ("noise", "model", str),
    "quantile": ("noise", "quantile", float),
    "estimate": ("noise", "estimate", str),
}


def parse_variant(spec: str) -> tuple[dict[str, dict], int | None]:
    """``NAME[,key=value...][:STEPS]``: a named variant with overrides, and its steps."""
    spec, _, steps = spec.partition(":")
    name, *pairs = spec.split(",")
    sections = {k: dict(v) for k, v in VARIANTS[name].items()}
    for pair in pairs:
        key, value = pair.split("=")
        section, field, cast = KEYS[key]
        sections.setdefault(section, {})[field] = cast(value)
    return sections, int(steps) if steps else None


def configs(spec: str, steps: int, seed: int):
    overrides, own_steps = parse_variant(spec)
    unet = sd.UNetConfig(**overrides.get("unet", {}))
    masking = sd.MaskingConfig(**overrides.get("masking", {}))
    train = sd.TrainConfig(
        steps=own_steps or steps, seed=seed, val_fraction=0.0, **overrides.get("train", {})
    )
    noise = sd.NoiseConfig(**overrides.get("noise", {}))
    return unet, masking, train, noise


def weighed_by_v(model: sd.TrainedModel) -> sd.TrainedModel:
    """The same model as one trained before the residual profile: its posterior weighs
    by the variance head's v with the head's envelope as the noise (same run, same
    networks: the posterior's change alone)."""
    older = copy.deepcopy(model)
    if "residual_profile" in older.training:
        older.training["noise_model"] = older.training.pop("noise_envelope")
        del older.training["residual_profile"]
    return older


def oracle_weighted(
    clean: list[np.ndarray], noisy: list[np.ndarray], prior: list[np.ndarray], bins: int = 32
) -> list[np.ndarray]:
    """μ + w(μ)·(y − μ) with, in each of ``bins`` equally populated bins of the blind-spot
    prediction μ, the weight w in [0, 1] that minimises the squared error against the
    clean images: the most any posterior weight by brightness can add (an oracle)."""
    mu, y, x = (np.concatenate([a.ravel() for a in arrays]) for arrays in (prior, noisy, clean))
    edges = np.unique(np.quantile(mu, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, len(edges) - 2)
    residual = y - mu
    products = np.bincount(which, residual * (x - mu), minlength=len(edges) - 1)
    squares = np.bincount(which, residual * residual, minlength=len(edges) - 1)
    weights = np.clip(products / np.maximum(squares, 1e-12), 0.0, 1.0)
    blended = mu + weights[which] * residual
    splits = np.cumsum([m.size for m in prior])[:-1]
    return [b.reshape(m.shape) for b, m in zip(np.split(blended, splits), prior, strict=True)]


def run_variant(variant, steps, seed, train_images, noisy, clean, blends) -> dict:
    unet, masking, train, noise = configs(variant, steps, seed)
    model = sd.train_n2v(train_images, unet=unet, masking=masking, train=train, noise=noise)
    seconds = model.training["seconds"]  # the training loop alone
    row = {
        "variant": variant,
        "seed": seed,
        "steps": model.training["steps"],
        "s/step": round(seconds / max(1, model.training["steps"]), 3),
    }
    if "noise_model" in model.training:
        row["noise model"] = model.training["noise_model"]
    prior = None  # the blind-spot prediction alone, made once for the blends that use it
    for blend in blends:
        if blend in ("prior", "oracle-weight") and prior is None:
            prior = [sd.denoise(model, n, posterior=False) for n in noisy]
        if blend == "prior":  # a noise model's blind-spot prediction alone
            denoised = prior
        elif blend == "oracle-weight":  # the headroom of the posterior's weight
            denoised = oracle_weighted(clean, noisy, prior)
        elif blend == "tta":  # the 8 rotations/flips averaged (denoise --tta)
            denoised = [sd.denoise(model, n, tta=True) for n in noisy]
        elif blend == "v-weight":  # the posterior before the residual profile
            denoised = [sd.denoise(weighed_by_v(model), n) for n in noisy]
        else:
            denoised = [sd.denoise(model, n, noise_sigma=blend) for n in noisy]
        suffix = "" if blend is None else f" ({blend})"
        for key, value in scores(clean, denoised).items():
            row[key + suffix] = value
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["em", "bsd", "fmd"], required=True)
    parser.add_argument("--variants", nargs="+", default=["paper", "cpu"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--blends",
        nargs="*",
        default=["none"],
        help="what to score: none (the default output), auto or a sigma (blended with "
        "the observed pixel), prior (no posterior), tta (8 symmetries averaged), "
        "v-weight (the posterior weighed by the head's v, as before the residual profile), "
        "oracle-weight (the prediction plus the observed pixel at the weight per brightness "
        "bin that scores best against the clean images: the posterior's headroom)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    blends = [None if b == "none" else b for b in args.blends]
    train_images, noisy, clean = load(args.data)
    rows = [{"variant": "noisy", **scores(clean, noisy)}]
    blur = oracle_blur(clean, noisy)
    rows.append({"variant": f"oracle blur (width {blur.pop('width')})", **blur})
    for variant in args.variants:
        for seed in args.seeds:
            rows.append(run_variant(variant, args.steps, seed, train_images, noisy, clean, blends))
            print(rows[-1], flush=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(markdown_table(rows, columns))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
