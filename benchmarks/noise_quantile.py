"""Which envelope quantile should fit the learned noise model: one choice across data kinds.

The learned noise model (models/noise_model.py) takes the noise variance as the lower
envelope of the variances the network predicts on its training images: the
``NoiseConfig.quantile`` of them (per bin of the signal for Poisson–Gaussian). Too high a
quantile calls some of the prior's uncertainty noise and blurs; too low keeps noise.
This refits the noise model of one trained model per data kind at several quantiles
(training images only: the fit never sees a development image), and scores the posterior
mean on the development images of ``denoiser_defaults.py`` (EM slices 10–19, Set12, FMD
fields 13–18; no standard test set). The blind-spot prediction of the development
images (16 passes) is made once per model; only the noise model changes with the
quantile. Models train with the library's defaults for a fixed number of steps per kind
and seed. Prints PSNR per quantile and kind, and the mean gain over the current default
per quantile across kinds; writes JSON.

    cd benchmarks && python noise_quantile.py --data em:97 fmd:300 bsd:600 --seeds 0 1 \
        --quantiles 0.005 0.01 0.02 0.05 0.1 --out results/issue16/noise_quantile.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

import semdenoise as sd
from cli_runs import recorded_args
from denoiser_defaults import load, scores
from semdenoise.config import NoiseConfig
from semdenoise.models.noise_model import ENVELOPE_QUANTILE, posterior_mean, predicted_variance
from semdenoise.predict.blind import blind_prediction
from semdenoise.predict.denoise import masking_radius
from semdenoise.report import markdown_table
from semdenoise.training.loading import prepare_training_data
from semdenoise.training.n2v import blind_spot_statistics

logger = logging.getLogger("noise_quantile")


def sweep(kind: str, steps: int, seed: int, quantiles: list[float]) -> dict[str, dict]:
    train_images, noisy, clean = load(kind)
    model = sd.train_n2v(
        train_images, train=sd.TrainConfig(steps=steps, seed=seed, val_fraction=0.0)
    )
    norm = model.normalization
    radius = masking_radius(model)
    blind = [blind_prediction(model.denoiser, norm.normalize(n), radius=radius) for n in noisy]
    data = prepare_training_data(
        train_images, None, min_size=model.denoiser.config.min_size, val_fraction=0.0, seed=seed
    )
    rows: dict[str, dict] = {}
    for quantile in quantiles:
        noise = NoiseConfig(quantile=quantile)
        _, fitted = blind_spot_statistics(model.denoiser, data.train_bank, norm, noise)
        denoised = []
        for image, predicted in zip(noisy, blind, strict=True):
            mean, variance = predicted[0], predicted_variance(predicted[1])
            value = posterior_mean(norm.normalize(image), mean, variance, fitted.variance(mean))
            denoised.append(norm.denormalize(value))
        if quantile == ENVELOPE_QUANTILE:  # what `denoise` gives, to rounding
            expected = sd.denoise(model, noisy[0])
            assert np.abs(expected - denoised[0]).max() < 1e-3 * np.ptp(expected)
        rows[f"{quantile:g}"] = {**scores(clean, denoised), "noise model": fitted.to_dict()}
        logger.info("%s seed %d quantile %g: %s", kind, seed, quantile, rows[f"{quantile:g}"])
    prior = [norm.denormalize(p[0]) for p in blind]
    rows["prior"] = scores(clean, prior)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["em:97", "fmd:300", "bsd:600"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--quantiles", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05, 0.1]
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if ENVELOPE_QUANTILE not in args.quantiles:
        args.quantiles.append(ENVELOPE_QUANTILE)
    results: dict[str, dict] = {}
    for spec in args.data:
        kind, _, steps = spec.partition(":")
        for seed in args.seeds:
            results[f"{kind} seed {seed}"] = sweep(kind, int(steps), seed, args.quantiles)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps({"args": recorded_args(args), "runs": results}, indent=1)
            )
    default = f"{ENVELOPE_QUANTILE:g}"
    table = []
    for q in [*(f"{q:g}" for q in sorted(args.quantiles)), "prior"]:
        row = {"quantile": q}
        gains = []
        for run, rows in results.items():
            row[run] = rows[q]["PSNR"]
            gains.append(rows[q]["PSNR"] - rows[default]["PSNR"])
        row["mean gain over default"] = round(float(np.mean(gains)), 3)
        row["worst gain"] = round(float(np.min(gains)), 3)
        table.append(row)
    print(markdown_table(table))


if __name__ == "__main__":
    main()
