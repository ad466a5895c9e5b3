"""`reproduce masking`: the paper's Fig. 6–7 — how many pixels to mask per image.

* Fig. 6: PSNR on unseen images against the number of masked pixels per 256x256
  image, every run the same number of steps (so the comparison is per step, as in
  the paper) on the same noisy synthetic plaque images.
* Fig. 7: spread of the loss over several random initialisations for a few masked
  counts: the training loss every 10 steps, mean ± standard deviation over seeds,
  with the validation loss and the final PSNR's spread beside it. The paper's claim:
  more masked pixels give each step more supervision, so training is steadier.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semdenoise.config import (
    CPU_LEARNING_RATE,
    NO_NOISE_MODEL,
    MaskingConfig,
    TrainConfig,
    cpu_unet,
)
from semdenoise.evaluation.metrics import psnr, ssim
from semdenoise.predict import denoise
from semdenoise.report import markdown_table, save_curves, write_report
from semdenoise.synth import make_set
from semdenoise.training import train_n2v

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskingSettings:
    counts: tuple[int, ...] = (16, 64, 169, 400, 1024)  # per 256x256 image
    spread_counts: tuple[int, ...] = (16, 169, 1024)
    seeds: int = 5
    steps: int = 600
    n_train: int = 16
    n_test: int = 8
    val_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 40:  # the training loss is logged every 10 steps
            raise ValueError(f"steps must be at least 40 for a loss curve, got {self.steps}")

    @classmethod
    def quick(cls, seed: int = 0) -> MaskingSettings:
        return cls(
            counts=(16, 169, 1024),
            spread_counts=(16, 1024),
            seeds=3,
            steps=120,
            n_train=8,
            n_test=4,
            val_every=10,
            seed=seed,
        )


def _loss_curve(checkpoints: Path, column: str) -> tuple[list[int], list[float]]:
    """(step, loss) pairs of one logged loss from the run's CSV log."""
    steps, losses = [], []
    with open(checkpoints / "logs" / "metrics.csv") as handle:
        for row in csv.DictReader(handle):
            if row.get(column):
                steps.append(int(row["step"]))
                losses.append(float(row[column]))
    return steps, losses


def _train(images: np.ndarray, count: int, seed: int, settings: MaskingSettings, folder: Path):
    out = folder / f"n2v_{count}_{seed}.pt"
    model = train_n2v(
        images,
        unet=cpu_unet(),
        masking=MaskingConfig(n_masked=count),
        noise=NO_NOISE_MODEL,
        train=TrainConfig(
            steps=settings.steps,
            seed=seed,
            learning_rate=CPU_LEARNING_RATE,
            val_every=settings.val_every,
            val_fraction=1.0 / len(images),
            checkpoint_every=10**6,
        ),
        out=out,
    )
    logs = Path(f"{out}.checkpoints")
    return model, _loss_curve(logs, "train_loss"), _loss_curve(logs, "val_loss")


def run_masking(out: str | Path, settings: MaskingSettings | None = None) -> dict[str, Any]:
    """Run both ablations and write report.md, report.json, psnr_vs_masked.png and
    loss_spread.png into ``out``."""
    settings = settings or MaskingSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train = make_set("plaques", settings.n_train, seed=settings.seed)
    test = make_set("plaques", settings.n_test, seed=settings.seed, first=settings.n_train)
    psnr_rows: list[dict[str, Any]] = []
    curves: dict[int, list[list[float]]] = {}
    curve_steps: list[int] = []
    final_psnr: dict[int, list[float]] = {}
    val_curves: dict[int, list[list[float]]] = {}
    seeds = range(settings.seed, settings.seed + settings.seeds)
    runs = [(count, settings.seed) for count in settings.counts]
    runs += [(c, s) for c in settings.spread_counts for s in seeds if s != settings.seed]
    with tempfile.TemporaryDirectory(prefix="semdenoise-masking-") as scratch:
        for index, (count, seed) in enumerate(sorted(set(runs)), 1):
            logger.info("[%d/%d] %d masked pixels, seed %d", index, len(set(runs)), count, seed)
            model, (steps, losses), (val_steps, val_losses) = _train(
                train.noisy, count, seed, settings, Path(scratch)
            )
            denoised = denoise(model, test.noisy)
            quality = {
                metric.__name__.upper(): float(
                    np.mean(
                        [
                            metric(c, d, data_range=test.data_range)
                            for c, d in zip(test.clean, denoised, strict=True)
                        ]
                    )
                )
                for metric in (psnr, ssim)
            }
            if count in settings.spread_counts:
                curves.setdefault(count, []).append(losses)
                val_curves.setdefault(count, []).append(val_losses)
                final_psnr.setdefault(count, []).append(quality["PSNR"])
                curve_steps = steps
            if count in settings.counts and seed == settings.seed:
                psnr_rows.append(
                    {"masked pixels": count, **quality, "seconds": model.training["seconds"]}
                )
    psnr_rows.sort(key=lambda r: r["masked pixels"])
    spread_rows = []
    band: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for count, runs_losses in sorted(curves.items()):
        losses = np.array([r[: len(curve_steps)] for r in runs_losses])
        mean, std = losses.mean(axis=0), losses.std(axis=0)
        validation = np.array(val_curves[count])
        band[f"{count} masked"] = (curve_steps, list(mean), list(std))
        late = slice(len(curve_steps) // 2, None)
        spread_rows.append(
            {
                "masked pixels": count,
                "seeds": len(runs_losses),
                "train loss std over seeds (2nd half)": float(std[late].mean()),
                "train loss step-to-step change (2nd half)": float(
                    np.abs(np.diff(losses[:, late], axis=1)).mean()
                ),
                "final val loss": float(validation[:, -1].mean()),
                "final val loss std": float(validation[:, -1].std()),
                "PSNR mean over seeds": float(np.mean(final_psnr[count])),
                "PSNR std over seeds": float(np.std(final_psnr[count])),
            }
        )
    save_curves(
        out / "psnr_vs_masked.png",
        {
            "PSNR on unseen images": (
                [r["masked pixels"] for r in psnr_rows],
                [r["PSNR"] for r in psnr_rows],
                None,
            )
        },
        xlabel="masked pixels per 256x256 image",
        ylabel="PSNR (dB)",
        title=f"{settings.steps} steps each (Fig. 6)",
        log_x=True,
    )
    save_curves(
        out / "loss_spread.png",
        band,
        xlabel="step",
        ylabel="training N2V loss (normalised)",
        title=f"mean ± std over {settings.seeds} initialisations (Fig. 7)",
    )
    wall = time.perf_counter() - started
    write_report(
        out,
        title="Masked pixels per image: PSNR and training steadiness (paper Fig. 6–7)",
        sections={
            "PSNR against masked pixels (Fig. 6)": (
                f"N2V grid masking, CPU preset, {settings.steps} steps each on "
                f"{settings.n_train - 1} noisy synthetic plaque images (one held out for "
                f"validation), PSNR on {settings.n_test} unseen ones.\n\n"
                + markdown_table(psnr_rows)
                + "\n\n![PSNR against masked pixels](psnr_vs_masked.png)"
            ),
            "Loss spread over initialisations (Fig. 7)": (
                "Training loss (logged every 10 steps) and validation loss (a held-out "
                f"image, fixed masks, every {settings.val_every} steps; the held-out image "
                "depends on the seed); spread = standard deviation over seeds at the same "
                "step; step-to-step change = mean absolute change between logged steps.\n\n"
                + markdown_table(spread_rows)
                + "\n\n![training loss, mean ± std over seeds](loss_spread.png)"
            ),
        },
        data={
            "settings": asdict(settings),
            "psnr": psnr_rows,
            "spread": spread_rows,
            "curves": {k: {"steps": v[0], "mean": v[1], "std": v[2]} for k, v in band.items()},
            "wall_seconds": round(wall, 1),
        },
    )
    return {"psnr": psnr_rows, "spread": spread_rows, "wall_seconds": wall}
