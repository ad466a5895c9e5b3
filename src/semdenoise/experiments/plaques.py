"""`reproduce plaques`: the paper's §3.5 on synthetic plaques — unsupervised joint training.

1. A *style* segmenter is trained (MSE, paper §3.2) on the related, cleaner and
   labelled task: synthetic somata.
2. On the noisier plaque images, whose labels are never used for training, N2V alone
   and the unsupervised joint mode (Eq. 4: the frozen style segmenter pulls the
   denoised image towards "dark background, bright targets") train for the same
   number of steps (never minutes: a result must not depend on the machine's load).
3. They are evaluated on unseen plaque images against the raw input and the classic
   baselines (Gaussian, NLM, TV self-calibrated; BM3D at the estimated noise level):
   PSNR/SSIM against the clean images, and what a fixed plaque segmenter — trained
   separately on the clean training plaques until its score on held-out clean plaques
   stops improving (:mod:`semdenoise.evaluation.ruler`), an evaluation tool only —
   makes of each output: foreground IoU, and object detection (precision, recall, F1)
   as in Tab. 2–3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from semdenoise.baselines import build_baselines, model_method, resolve_baselines
from semdenoise.config import (
    NO_NOISE_MODEL,
    PAPER_MASKING,
    JointConfig,
    cpu_training,
    cpu_unet,
)
from semdenoise.evaluation import evaluate, model_segmenter, write_evaluation
from semdenoise.evaluation.report import ruler_can_rank
from semdenoise.evaluation.ruler import RulerSettings, ruler_note, train_ruler
from semdenoise.experiments.seeds import SeedRun, run_and_report, write_seed_report
from semdenoise.report import markdown_table
from semdenoise.synth import make_set
from semdenoise.training import train_joint, train_n2v, train_seg

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlaquesSettings:
    """Sizes and budgets; ``quick`` fits the demo's few minutes on 2 CPU cores."""

    size: int = 256
    n_somata: int = 32
    n_train: int = 32
    n_test: int = 16
    steps: int = 1500  # N2V and the joint model each
    style_steps: int = 170  # the style segmenter
    ruler: RulerSettings = RulerSettings(max_steps=1000, crop_size=128, batch_size=8)
    n_ruler_val: int = 8  # held-out clean plaques the ruler is early-stopped on
    baselines: tuple[str, ...] = ("gaussian", "nlm", "tv", "bm3d")
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> PlaquesSettings:
        return cls(
            n_somata=12,
            n_train=12,
            n_test=8,
            steps=350,
            style_steps=40,
            ruler=RulerSettings(max_steps=500, crop_size=96, batch_size=8),
            n_ruler_val=4,
            seed=seed,
        )


def run_plaques(out: str | Path, settings: PlaquesSettings | None = None) -> dict[str, Any]:
    """Run the experiment and write report.md, report.json and figures into ``out``."""
    settings = settings or PlaquesSettings()
    out = Path(out)
    resolve_baselines(settings.baselines)  # a missing optional package stops us now
    started = time.perf_counter()
    seed = settings.seed
    somata = make_set("somata", settings.n_somata, size=settings.size, seed=seed)
    train = make_set("plaques", settings.n_train, size=settings.size, seed=seed)
    test = make_set(
        "plaques", settings.n_test, size=settings.size, seed=seed, first=settings.n_train
    )
    ruler_val = make_set(
        "plaques",
        settings.n_ruler_val,
        size=settings.size,
        seed=seed,
        first=settings.n_train + settings.n_test,
    )
    style_budget = cpu_training(settings.style_steps, seed)
    logger.info("style segmenter: MSE on %d labelled noisy somata images", len(somata))
    style = train_seg(somata.noisy, somata.masks, unet=cpu_unet(), loss="mse", train=style_budget)
    logger.info("evaluation segmenter: BCE on the %d clean training plaques", len(train))
    fixed, ruler = train_ruler(
        train.clean,
        train.masks,
        val_clean=ruler_val.clean,
        val_masks=ruler_val.masks,
        val_instances=ruler_val.instances,
        settings=replace(settings.ruler, seed=seed),
    )
    budget = cpu_training(settings.steps, seed)
    logger.info("N2V on the %d noisy training plaques, %d steps", len(train), settings.steps)
    n2v = train_n2v(
        train.noisy, unet=cpu_unet(), train=budget, noise=NO_NOISE_MODEL, masking=PAPER_MASKING
    )
    logger.info("unsupervised joint (Eq. 4) with the frozen style segmenter")
    joint = train_joint(
        train.noisy,
        style_segmenter=style,
        unet=cpu_unet(),
        joint=JointConfig(),
        masking=PAPER_MASKING,
        train=budget,
    )
    methods = [
        *build_baselines(settings.baselines, train.noisy, seed=seed),
        model_method("n2v", n2v),
        model_method("joint", joint),
    ]
    evaluation = evaluate(
        test.noisy,
        methods,
        clean=test.clean,
        labels=test.masks,
        instances=test.instances,
        segmenter=model_segmenter(fixed),
    )
    runs = [
        {"model": name, "steps": m.training["steps"]}
        for name, m in (
            ("style segmenter", style),
            ("evaluation segmenter", fixed),
            ("n2v", n2v),
            ("joint", joint),
        )
    ]
    wall = time.perf_counter() - started
    intro = (
        f"{len(test)} unseen synthetic plaque images ({settings.size}x{settings.size}, "
        f"Poisson–Gaussian noise: {test.noise.photons_per_unit} photons per unit, read "
        f"noise {test.noise.read_sigma}); PSNR/SSIM with data range "
        f"{evaluation.data_range:.1f} (the clean images' range). IoU/F1: a fixed plaque "
        "segmenter trained on the clean training plaques until its score on "
        f"{settings.n_ruler_val} held-out clean plaques stopped improving "
        f"({ruler_note(ruler)}), applied to every output; objects "
        "matched one to one at IoU >= 0.5, counts pooled over images. N2V and joint: "
        f"{settings.steps} steps each on {len(train)} noisy training images, CPU preset."
    )
    write_evaluation(
        evaluation,
        out,
        title="Synthetic plaques: unsupervised joint denoising (paper §3.5)",
        intro=intro,
        sections={"Training runs": markdown_table(runs)},
        data={"settings": asdict(settings), "runs": runs, "ruler": ruler.to_dict()},
        highlight="joint",
        timing={
            "wall_seconds": round(wall, 1),
            "training_seconds": {
                name: m.training["seconds"]
                for name, m in (("style", style), ("ruler", fixed), ("n2v", n2v), ("joint", joint))
            },
        },
    )
    return {
        "summary": evaluation.summary,
        "runs": runs,
        "downstream_ranked": ruler_can_rank(evaluation)[0],
        "wall_seconds": wall,
    }


def run_plaques_seeds(
    out: str | Path, seeds: Sequence[int], settings: PlaquesSettings | None = None
) -> dict[str, Any]:
    """The experiment once per seed (data, noise and training all follow the seed) into
    ``out/seed_<s>/``, and a report over seeds in ``out`` (one seed: straight into ``out``)."""
    settings = settings or PlaquesSettings()

    def one(folder: Path, seed: int) -> SeedRun:
        result = run_plaques(folder, replace(settings, seed=seed))
        return SeedRun(seed, result["summary"], result["downstream_ranked"], result["wall_seconds"])

    def report(runs: list[SeedRun]) -> dict[str, Any]:
        intro = (
            f"Synthetic plaques, {settings.n_test} unseen test images per seed; N2V and joint "
            f"{settings.steps} steps each. Every seed draws its own images and noise and trains "
            "every model (style segmenter, ruler, N2V, joint) again, so the interval covers "
            "both."
        )
        return write_seed_report(
            out,
            runs,
            title="Synthetic plaques over seeds: unsupervised joint denoising (paper §3.5)",
            intro=intro,
            reference="joint",
            data={"settings": asdict(settings)},
        )

    return run_and_report(one, out, seeds, report)
