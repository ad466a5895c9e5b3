"""`reproduce em`: the paper's §3.4 on real EM — supervised joint training at three noise levels.

On the Lucchi mitochondria slices (``../shared/data/lucchi_em``), Gaussian noise of
sigma 15, 25 and 50 (0–255 scale, fixed seed, not clipped) is added. N2V alone and the
supervised joint mode (Eq. 3, the training masks) train for the same number of steps on
the noisy training slices and are evaluated on the noisy test slices beside the raw
input, an oracle Gaussian blur (its width chosen with the clean test images: the bar a
learned method must clear, since the "clean" slices carry noise of their own),
self-calibrated Gaussian and TV filters, and BM3D at the true sigma. PSNR/SSIM use
data range 255. One fixed segmenter, trained once on the clean training slices, scores
every output (foreground IoU, Dice, mitochondria detected as objects); the joint
model's own segmenter is scored on the noisy input too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

from semdenoise.baselines import Method, build_baselines, model_method, resolve_baselines
from semdenoise.config import (
    NO_NOISE_MODEL,
    PAPER_MASKING,
    JointConfig,
    cpu_training,
    cpu_unet,
)
from semdenoise.errors import InputError
from semdenoise.evaluation import evaluate, model_segmenter, write_evaluation
from semdenoise.evaluation.metrics import psnr
from semdenoise.evaluation.report import displayed, ruler_can_rank
from semdenoise.evaluation.ruler import RulerSettings, ruler_note, train_ruler
from semdenoise.experiments.seeds import SeedRun, run_and_report, write_seed_report
from semdenoise.report import markdown_table, write_report
from semdenoise.training import train_joint, train_n2v

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path("../shared/data/lucchi_em")
NOISE_SEED = 2024
EM_FILES = ("train_images", "train_masks", "test_images", "test_masks")


@dataclass(frozen=True)
class EMSettings:
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)
    steps: int = 1000  # N2V and joint, each, per sigma
    ruler: RulerSettings = RulerSettings(max_steps=1000, crop_size=256, batch_size=4)
    ruler_val_slices: int = 4  # clean training slices held out from the ruler's training
    test_slices: int | None = None  # all ten
    crop: int | None = None  # test slices whole
    train_crop: int | None = 256  # N2V and joint train on random crops of this side
    baselines: tuple[str, ...] = ("gaussian", "tv", "bm3d")
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> EMSettings:
        """Two 512x512 test crops, one sigma, training on 256x256 crops (more steps)."""
        return cls(
            sigmas=(25.0,),
            steps=300,
            ruler=RulerSettings(max_steps=200, crop_size=256, batch_size=4),
            test_slices=2,
            crop=512,
            train_crop=256,
            baselines=("gaussian", "bm3d"),
            seed=seed,
        )


def load_em(folder: str | Path) -> dict[str, np.ndarray]:
    """The four EM stacks; a one-line error when the folder is not the expected data."""
    folder = Path(folder)
    missing = [n for n in EM_FILES if not (folder / f"{n}.tif").is_file()]
    if missing:
        raise InputError(
            f"{folder}: not the Lucchi EM data (missing {', '.join(m + '.tif' for m in missing)}); "
            "pass --data"
        )
    return {name: tifffile.imread(folder / f"{name}.tif") for name in EM_FILES}


def add_gaussian_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian noise on the 0–255 scale, added to the float image, not clipped."""
    rng = np.random.default_rng(seed)
    return clean.astype(np.float32) + rng.normal(0, sigma, clean.shape).astype(np.float32)


def oracle_gaussian(clean: np.ndarray, noisy: np.ndarray) -> Method:
    """A Gaussian blur whose width is chosen with the clean images (an upper bar)."""
    widths = np.arange(0.4, 3.01, 0.1)
    scores = [
        np.mean(
            [
                psnr(c, gaussian_filter(n, w), data_range=255)
                for c, n in zip(clean, noisy, strict=True)
            ]
        )
        for w in widths
    ]
    width = float(widths[int(np.argmax(scores))])
    return Method(
        f"oracle gaussian ({width:.1f})",
        lambda image: (gaussian_filter(image, width), {}),
    )


def run_em(
    out: str | Path, settings: EMSettings | None = None, *, data: str | Path = DEFAULT_DATA
) -> dict[str, Any]:
    """Run every sigma; writes one report per sigma (``sigma_<s>/``) and a summary."""
    settings = settings or EMSettings()
    out = Path(out)
    resolve_baselines(settings.baselines)  # a missing optional package stops us now
    stacks = load_em(data)
    started = time.perf_counter()
    train_clean, train_masks = stacks["train_images"], stacks["train_masks"]
    test_clean, test_masks = stacks["test_images"], stacks["test_masks"]
    if settings.test_slices is not None:
        test_clean, test_masks = (
            test_clean[: settings.test_slices],
            test_masks[: settings.test_slices],
        )
    if settings.crop is not None:
        window = (slice(None), slice(0, settings.crop), slice(0, settings.crop))
        test_clean, test_masks = test_clean[window], test_masks[window]
    held = settings.ruler_val_slices
    logger.info("fixed segmenter on %d clean training slices", len(train_clean) - held)
    fixed, ruler = train_ruler(
        train_clean[:-held],
        train_masks[:-held],
        val_clean=train_clean[-held:],
        val_masks=train_masks[-held:],
        settings=replace(settings.ruler, seed=settings.seed),
    )
    rows, runs, ranked = [], [], True
    for sigma in settings.sigmas:
        train_noisy = add_gaussian_noise(train_clean, sigma, NOISE_SEED + 1)
        test_noisy = add_gaussian_noise(test_clean, sigma, NOISE_SEED)
        budget = cpu_training(
            settings.steps, settings.seed, val_fraction=0.0, crop_size=settings.train_crop
        )
        logger.info("sigma %g: N2V, %d steps", sigma, settings.steps)
        n2v = train_n2v(
            train_noisy, unet=cpu_unet(), train=budget, noise=NO_NOISE_MODEL, masking=PAPER_MASKING
        )
        logger.info("sigma %g: supervised joint (Eq. 3), %d steps", sigma, settings.steps)
        joint = train_joint(
            train_noisy,
            labels=train_masks,
            unet=cpu_unet(),
            joint=JointConfig(),
            masking=PAPER_MASKING,
            train=budget,
        )
        methods = [
            oracle_gaussian(test_clean, test_noisy),
            *build_baselines(settings.baselines, train_noisy, noise_sigma=sigma),
            model_method("n2v", n2v),
            model_method(f"n2v + sigma {sigma:g} blend", n2v, noise_sigma=sigma),
            model_method("joint", joint),
        ]
        evaluation = evaluate(
            test_noisy,
            methods,
            clean=test_clean,
            labels=test_masks,
            segmenter=model_segmenter(fixed),
            data_range=255.0,
        )
        write_evaluation(
            evaluation,
            out / f"sigma_{sigma:g}",
            title=f"EM, Gaussian noise sigma {sigma:g}: N2V vs supervised joint (paper §3.4)",
            highlight="joint",
        )
        ranked = ranked and ruler_can_rank(evaluation)[0]
        rows += [{"sigma": f"{sigma:g}", **row} for row in evaluation.summary]
        runs += [
            {"sigma": f"{sigma:g}", "model": name, "steps": m.training["steps"]}
            for name, m in (("n2v", n2v), ("joint", joint))
        ]
    columns = ["sigma", "method", "PSNR", "SSIM", "IoU", "F1", "own IoU", "own F1"]
    wall = time.perf_counter() - started
    cropped = f" (crops {settings.crop}x{settings.crop})" if settings.crop else ""
    write_report(
        out,
        title="EM: N2V alone vs the supervised joint mode at three noise levels (paper §3.4)",
        sections={
            "Summary": (
                f"{len(test_clean)} test slices{cropped}; "
                f"N2V and joint {settings.steps} steps each per sigma on the {len(train_clean)} "
                "noisy training slices (CPU preset). IoU/F1: one fixed segmenter trained on "
                f"{len(train_clean) - held} clean training slices until its score on the "
                f"other {held} stopped improving ({ruler_note(ruler)}); own IoU/F1: the "
                "joint model's segmenter on the noisy input. In brackets: 95 % bootstrap "
                "interval over the test slices.\n\n"
                + markdown_table(
                    [displayed(r) for r in rows], [c for c in columns if any(c in r for r in rows)]
                )
            ),
            "Training runs": markdown_table(runs),
            "Per sigma": "\n".join(
                f"- [sigma {s:g}](sigma_{s:g}/report.md)" for s in settings.sigmas
            ),
        },
        data={
            "settings": asdict(settings),
            "rows": rows,
            "runs": runs,
            "ruler": ruler.to_dict(),
            "downstream_ranked": ranked,
        },
    )
    (out / "timing.json").write_text(json.dumps({"wall_seconds": round(wall, 1)}, indent=2))
    return {"rows": rows, "runs": runs, "downstream_ranked": ranked, "wall_seconds": wall}


def run_em_seeds(
    out: str | Path,
    seeds: Sequence[int],
    settings: EMSettings | None = None,
    *,
    data: str | Path = DEFAULT_DATA,
) -> dict[str, Any]:
    """The experiment once per training seed into ``out/seed_<s>/``, and a report over
    seeds in ``out`` (one seed: straight into ``out``). The noise is the same for every
    seed (a fixed noise seed), so the interval is over training: the ruler, N2V and joint
    are trained again."""
    settings = settings or EMSettings()
    load_em(data)  # a wrong folder fails before the first seed trains

    def one(folder: Path, seed: int) -> SeedRun:
        result = run_em(folder, replace(settings, seed=seed), data=data)
        return SeedRun(seed, result["rows"], result["downstream_ranked"], result["wall_seconds"])

    def report(runs: list[SeedRun]) -> dict[str, Any]:
        cropped = f" (crops {settings.crop}x{settings.crop})" if settings.crop else ""
        intro = (
            f"Lucchi EM test slices{cropped}, Gaussian noise sigma "
            f"{', '.join(f'{s:g}' for s in settings.sigmas)} (0–255, one fixed noise draw); "
            f"N2V and supervised joint {settings.steps} steps each per sigma. Every seed trains "
            "the fixed segmenter, N2V and joint again; the classic baselines do not change."
        )
        return write_seed_report(
            out,
            runs,
            title="EM over seeds: N2V alone vs the supervised joint mode (paper §3.4)",
            intro=intro,
            reference="joint",
            group=("sigma", "method"),
            data={"settings": asdict(settings)},
        )

    return run_and_report(one, out, seeds, report, settings=settings)
