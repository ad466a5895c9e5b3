"""The shared training runner: Lightning Trainer, time limit, checkpoints, resume.

Every training mode is a LightningModule subclassing ``TrainingModule``; this runner
gives them the same contract: ``--steps`` and/or ``--max-minutes`` (whichever comes
first), atomic checkpoints every K steps in ``MODEL.pt.checkpoints/``, ``--resume``
from the latest one, and a learning rate that follows the run's progress.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from semdenoise.config import DEFAULT_STEPS, TrainConfig
from semdenoise.errors import InputError, ModelFileError, TrainingError, TrainingInterrupted
from semdenoise.io.atomic import atomic_path
from semdenoise.io.model_file import load_plain_data

logger = logging.getLogger(__name__)

STEPS_PER_EPOCH = 1000  # bookkeeping only: data is sampled inside each step
LAST_CHECKPOINT = "last.ckpt"


def checkpoint_dir_for(model_path: str | os.PathLike) -> Path:
    """Checkpoints live beside the output: ``MODEL.pt.checkpoints/``."""
    path = Path(model_path)
    return path.with_name(path.name + ".checkpoints")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file, fsync, rename: a kill mid-write keeps the previous one.

    Loading uses ``weights_only=True``: a checkpoint is tensors and primitives only.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return torch.load(path, map_location="cpu", weights_only=True)


class TrainingModule(L.LightningModule):
    """Base for every mode: progress-driven LR, time limit, generator in checkpoints."""

    def __init__(self, train: TrainConfig, train_bank=None, val_bank=None) -> None:
        super().__init__()
        self.train_config = train
        # Training data lives on the training device, sampled inside each step; the
        # banks are plain attributes, never part of the checkpoint.
        self._train_bank = train_bank
        self._val_bank = val_bank
        self.generator: torch.Generator | None = None
        self.elapsed_before = 0.0  # seconds trained in earlier (resumed-from) runs
        self._fit_started = 0.0
        self._restored_generator_state: torch.Tensor | None = None

    # ----- time and progress -------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._fit_started)

    @property
    def progress(self) -> float:
        """Fraction of the run done: steps or time, whichever is further along."""
        config = self.train_config
        fractions = [self.global_step / self.max_steps]
        if config.max_minutes is not None:
            fractions.append(self.elapsed / (60.0 * config.max_minutes))
        return min(1.0, max(fractions))

    @property
    def max_steps(self) -> int:
        config = self.train_config
        if config.steps is not None:
            return config.steps
        return 10**9 if config.max_minutes is not None else DEFAULT_STEPS

    def learning_rate_now(self) -> float:
        base = self.train_config.learning_rate
        if self.train_config.lr_schedule == "constant":
            return base
        # Cosine to 5 % of the base rate; time-limited runs follow elapsed time.
        return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * self.progress)))

    def on_fit_start(self) -> None:
        self._fit_started = time.monotonic()
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.train_config.seed)
        if self._restored_generator_state is not None:
            self.generator.set_state(self._restored_generator_state)
        if self._train_bank is not None:
            self._train_bank = self._train_bank.to(self.device)
        if self._val_bank is not None:
            self._val_bank = self._val_bank.to(self.device)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        for group in self.optimizers().param_groups:
            group["lr"] = self.learning_rate_now()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        config = self.train_config
        if config.max_minutes is not None and self.elapsed >= 60.0 * config.max_minutes:
            logger.info("time limit reached after %d steps", self.global_step)
            self.trainer.should_stop = True

    def check_finite(self, loss: torch.Tensor, name: str = "loss") -> None:
        """Stop with a clear message when the loss is NaN/inf (a CPU–GPU sync point)."""
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{name} became {loss.item()} at step {self.global_step}; the last "
                "checkpoint is kept; try a lower --learning-rate"
            )

    def validation_generator(self, index: int) -> torch.Generator:
        """A generator fixed per validation image, so successive validations compare."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.train_config.seed + 1_000_003 * (index + 1))
        return generator

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["semdenoise"] = {
            "elapsed": self.elapsed,
            "generator": self.generator.get_state() if self.generator is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("semdenoise", {})
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self._restored_generator_state = state.get("generator")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.parameters() if p.requires_grad]  # frozen nets stay out
        return torch.optim.Adam(trainable, lr=self.train_config.learning_rate)


def weights_are_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


class PeriodicCheckpoint(L.Callback):
    """Save ``last.ckpt`` every K steps, at the end and on Ctrl-C/SIGTERM (atomic IO).

    A step whose update made a weight NaN/inf is never saved, so the checkpoint on disk
    is always the last good one when the next step's loss check stops the run.
    """

    def __init__(self, directory: Path, every: int) -> None:
        self.path = directory / LAST_CHECKPOINT
        self.every = every

    def save(self, trainer, module) -> None:
        if weights_are_finite(module):
            trainer.save_checkpoint(self.path, weights_only=False)
        else:
            logger.warning("weights are not finite at step %d: not saved", trainer.global_step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.save(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        self.save(trainer, module)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt | SystemExit):  # Ctrl-C, SIGTERM
            self.save(trainer, module)


class StepIndices(torch.utils.data.Dataset):
    """A stand-in dataset: each item is a step number; the module samples the data."""

    def __len__(self) -> int:
        return STEPS_PER_EPOCH

    def __getitem__(self, index: int) -> int:
        return index


def validation_loader(bank) -> torch.utils.data.DataLoader | None:
    """One validation image per batch (indices; the module holds the images)."""
    if bank is None:
        return None
    return torch.utils.data.DataLoader(range(bank.count), batch_size=None)


def accelerator_for(device: str) -> str:
    if device == "gpu" and not torch.cuda.is_available():
        raise InputError("--device gpu: no GPU is available on this machine")
    return {"auto": "auto", "cpu": "cpu", "gpu": "gpu"}[device]


def check_checkpoint(path: Path, module: TrainingModule) -> None:
    """Refuse, in one line, a checkpoint that is unreadable, unsafe or from another network."""
    checkpoint = load_plain_data(path, what="checkpoint")
    saved = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(saved, dict):
        raise ModelFileError(f"{path}: not a training checkpoint (no state_dict)")
    expected = module.state_dict()
    different = sorted(
        name
        for name in set(saved) | set(expected)
        if name not in saved
        or name not in expected
        or tuple(saved[name].shape) != tuple(expected[name].shape)
    )
    if different:
        raise InputError(
            f"{path}: checkpoint of a different network ({len(different)} tensor(s) differ, "
            f"e.g. {different[0]}); resume with the options it was trained with"
        )


class _sigint_restored:
    """Lightning ignores SIGINT after a Ctrl-C; give a notebook its interrupt key back."""

    def __enter__(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        self.handler = signal.getsignal(signal.SIGINT) if main else None

    def __exit__(self, *exc) -> None:
        if self.handler is not None:
            signal.signal(signal.SIGINT, self.handler)


def run_training(
    module: TrainingModule,
    *,
    out: str | os.PathLike | None,
    resume: bool,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> dict[str, Any]:
    """Fit ``module``; returns a summary (steps, seconds, last losses) for the model file.

    Checkpoints go beside ``out`` (none without it); the module's validation images,
    if any, are validated every ``val_every`` steps. ``callbacks`` join the runner's own
    (for example early stopping on a score the caller computes).
    """
    config = module.train_config
    checkpoint_dir = checkpoint_dir_for(out) if out is not None else None
    val_loader = validation_loader(module._val_bank)
    resume_from = None
    if resume:
        if checkpoint_dir is None or not (checkpoint_dir / LAST_CHECKPOINT).is_file():
            raise InputError(f"--resume: no checkpoint found in {checkpoint_dir}")
        resume_from = checkpoint_dir / LAST_CHECKPOINT
        check_checkpoint(resume_from, module)
    callbacks = list(callbacks)
    logger_ = False
    if checkpoint_dir is not None:
        callbacks.append(PeriodicCheckpoint(checkpoint_dir, config.checkpoint_every))
        from lightning.pytorch.loggers import CSVLogger

        logger_ = CSVLogger(save_dir=checkpoint_dir, name="logs", version="")
    trainer = L.Trainer(
        accelerator=accelerator_for(config.device),
        devices=1,
        max_steps=module.max_steps,
        max_epochs=-1,
        val_check_interval=config.val_every if val_loader is not None else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if val_loader is not None else 0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=logger_,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=10,
        plugins=[AtomicCheckpointIO()],
        deterministic=False,
    )
    train_loader = torch.utils.data.DataLoader(StepIndices(), batch_size=None, shuffle=False)
    with warnings.catch_warnings():
        # Lightning's advice does not apply here: the loaders yield step numbers only (the
        # data is sampled in the step by a generator that checkpoints restore), and a
        # run without validation images has no val loader on purpose.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*The number of training batches.*")
        warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")
        warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")
        # a frozen style segmenter is in eval mode on purpose (joint unsupervised mode)
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")
        warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
        with _sigint_restored():
            try:
                trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from)
            except (KeyboardInterrupt, SystemExit) as e:
                # Lightning turns Ctrl-C into sys.exit(1) and SIGTERM into SystemExit,
                # after our callback saved the checkpoint
                where = f"; continue with --resume from {checkpoint_dir}" if out else ""
                raise TrainingInterrupted(
                    f"training interrupted at step {trainer.global_step}{where}"
                ) from e
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {
        "steps": int(trainer.global_step),
        "seconds": round(module.elapsed, 2),
        "metrics": metrics,
    }
