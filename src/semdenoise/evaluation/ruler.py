"""The evaluation segmenter ("the ruler"), trained until it stops getting better.

Downstream IoU and F1 rank denoisers only if the segmenter that reads them is good at
its job: one trained for a wall-clock budget on a busy machine made 26 steps and ranked
the raw noisy input above the clean images. The ruler therefore trains for steps, is
scored every ``val_every`` steps on held-out *clean* images (foreground IoU and object
F1, the read-outs it will give), keeps the weights of its best score, and stops when
``patience`` scores in a row bring no improvement, or at ``max_steps``. Its clean score
is reported, and a report refuses to rank methods with a ruler below ``MIN_CLEAN_F1``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch

from semdenoise.evaluation.evaluate import _pooled, _segmentation_scores
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel

logger = logging.getLogger(__name__)

# Below this clean-image F1 (or IoU, without objects) the ruler cannot tell methods apart.
MIN_CLEAN_F1 = 0.7


@dataclass(frozen=True)
class RulerSettings:
    """How the ruler trains: a step cap, scoring interval and patience, crops per step."""

    max_steps: int = 600
    val_every: int = 25
    patience: int = 8  # checks without improvement; the cosine rate makes early scores jumpy
    crop_size: int | None = 128
    batch_size: int = 8
    seed: int = 0


@dataclass
class RulerRecord:
    """The ruler's history: score at each check, the best one and where it stopped."""

    scores: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] | None = None
    stopped_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "best": self.best, "stopped_at": self.stopped_at}


def clean_score(
    segment: Any, clean: np.ndarray, masks: np.ndarray, instances: np.ndarray | None = None
) -> dict[str, float]:
    """Mean foreground IoU and pooled object F1 of ``segment`` on clean images, scored
    exactly as the evaluation scores every method's output."""
    rows = [
        _segmentation_scores(masks[i], None if instances is None else instances[i], segment(image))
        for i, image in enumerate(clean)
    ]
    pooled = _pooled(rows)
    return {"IoU": pooled["IoU"], "F1": pooled["F1"]}


class _KeepBest(L.Callback):
    """Score the segmenter on held-out clean images; keep the best weights; stop when
    the score has not improved for ``patience`` checks."""

    def __init__(self, score: Any, every: int, patience: int, record: RulerRecord) -> None:
        self.score, self.every, self.patience, self.record = score, every, patience, record
        self.best_value = -np.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.waited = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every and step < trainer.max_steps:
            return
        network = module.segmenter
        was_training = network.training
        scores = self.score(network)
        network.train(was_training)
        value = scores["IoU"] + scores["F1"]
        self.record.scores.append({"step": step, **scores})
        logger.info("ruler step %d: clean IoU %.3f, F1 %.3f", step, scores["IoU"], scores["F1"])
        if value > self.best_value:
            self.best_value, self.waited = value, 0
            self.best_state = copy.deepcopy(network.state_dict())
            self.record.best = {"step": step, **scores}
        else:
            self.waited += 1
            if self.waited >= self.patience:
                trainer.should_stop = True
        self.record.stopped_at = step


def ruler_note(record: RulerRecord) -> str:
    """One line for a report: the ruler's best held-out clean score and where."""
    best = record.best or {}
    return (
        f"held-out clean IoU {best.get('IoU', float('nan')):.3f}, F1 "
        f"{best.get('F1', float('nan')):.3f} at step {best.get('step')}, stopped at step "
        f"{record.stopped_at}"
    )


def train_ruler(
    clean: np.ndarray,
    masks: np.ndarray,
    *,
    val_clean: np.ndarray,
    val_masks: np.ndarray,
    val_instances: np.ndarray | None = None,
    unet: Any = None,
    settings: RulerSettings | None = None,
) -> tuple[TrainedModel, RulerRecord]:
    """Train the evaluation segmenter on clean images, early-stopped on held-out ones.

    Returns the model with the weights of its best held-out score, and the record of
    every score (the clean score a report prints is ``record.best``).
    """
    from semdenoise.config import cpu_training, cpu_unet
    from semdenoise.predict import segment
    from semdenoise.training import train_seg

    settings = settings or RulerSettings()
    record = RulerRecord()
    # the normalisation train_seg fits (every image trains: no validation split)
    normalization = Normalization.fit(list(np.asarray(clean, dtype=np.float32)))

    def score(network) -> dict[str, float]:
        model = TrainedModel("seg", {"segmenter": network.eval()}, normalization)
        return clean_score(
            lambda image: segment(model, image, source="ruler"), val_clean, val_masks, val_instances
        )

    keep = _KeepBest(score, settings.val_every, settings.patience, record)
    train = cpu_training(
        settings.max_steps,
        settings.seed,
        val_fraction=0.0,
        crop_size=settings.crop_size,
        batch_size=settings.batch_size,
    )
    model = train_seg(clean, masks, unet=unet or cpu_unet(), train=train, callbacks=[keep])
    if keep.best_state is not None:
        model.segmenter.load_state_dict(keep.best_state)
    model.training["ruler"] = record.to_dict()
    best = record.best or {}
    logger.info(
        "ruler: best clean IoU %.3f, F1 %.3f at step %s of %d",
        best.get("IoU", float("nan")),
        best.get("F1", float("nan")),
        best.get("step"),
        record.stopped_at,
    )
    return model, record
