"""The shared training runner: Lightning Trainer, time limit, checkpoints, resume.

Every training mode is a LightningModule subclassing ``TrainingModule``; this runner
gives them the same contract: ``--steps`` and/or ``--max-minutes`` (whichever comes
first), atomic checkpoints every K steps in ``MODEL.pt.checkpoints/``, ``--resume``
from the latest one, and a learning rate that follows the run's progress.

With ``devices * num_nodes`` > 1 the run is Lightning DDP (docs/distributed.md): every
process runs the whole command, samples its own share of the images with its own
generator, and averages gradients with the others; checkpoints hold every process's
generator, and only global rank 0 lives on after training to write the model.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException

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


def rank_seed(seed: int, rank: int) -> int:
    """The sampling seed of DDP process ``rank``: rank 0 keeps ``seed``, so one process
    trains exactly as before; the others get streams no seed below 2**32 starts."""
    return seed + (rank << 32)


def reseed(seed: int, rank: int, step: int) -> int:
    """A fresh sampling seed for a rank resumed under another number of processes."""
    digest = hashlib.blake2b(f"{seed}:{rank}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class TrainingModule(L.LightningModule):
    """Base for every mode: progress-driven LR, time limit, generator in checkpoints."""

    # DDP: a mode whose steps may leave some trainable weights out of the loss (joint
    # pre-training) asks DDP to look for them each step (a cost the others do not pay).
    ddp_find_unused_parameters = False

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
        self._shared_elapsed: float | None = None  # DDP: the ranks' clock, agreed each step
        self._stop_requested = False  # DDP: a SIGTERM/SIGINT seen, acted on at step end
        self._restored_generator_states: list[torch.Tensor] | None = None  # one per rank
        self._restored_step = 0

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
            # under DDP every process follows the same clock: the same learning rate
            elapsed = self.elapsed if self._shared_elapsed is None else self._shared_elapsed
            fractions.append(elapsed / (60.0 * config.max_minutes))
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
        rank, world = self.global_rank, self.trainer.world_size
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(rank_seed(self.train_config.seed, rank))
        states = self._restored_generator_states
        if states is not None and len(states) == world:
            self.generator.set_state(states[rank])
        elif states is not None:  # another number of processes: stated in on_load_checkpoint
            self.generator.manual_seed(reseed(self.train_config.seed, rank, self._restored_step))
        if world > 1:
            self._shared_elapsed = self.elapsed_before
        if self._train_bank is not None:
            self._train_bank = self._train_bank.for_rank(rank, world).to(self.device)
        if self._val_bank is not None:  # every process validates all (see validation_loader)
            self._val_bank = self._val_bank.to(self.device)

    def on_train_start(self) -> None:
        """Under DDP a SIGTERM or Ctrl-C only marks a stop request, which every process
        acts on after the same step (``on_train_batch_end``). Lightning's own SIGTERM
        handler exchanges a tensor from inside the signal handler, which deadlocks when
        the signal lands on one rank during another collective (seen with SIGTERM sent
        to all ranks at once, as SLURM and torchrun do). Runs after Lightning registers
        its handlers; its teardown restores the SIGTERM handler, run_training SIGINT's."""
        self._stop_requested = False
        main = threading.current_thread() is threading.main_thread()
        if self.trainer.world_size > 1 and main:
            signal.signal(signal.SIGTERM, self._request_stop)
            signal.signal(signal.SIGINT, self._request_stop)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_requested:  # a second signal: stop now, without a checkpoint
            raise KeyboardInterrupt
        logger.warning("stop requested: saving a checkpoint after this step")
        self._stop_requested = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        for group in self.optimizers().param_groups:
            group["lr"] = self.learning_rate_now()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        config = self.train_config
        if self.trainer.world_size > 1:
            # the processes agree, after every step, on the clock (the latest) and on
            # stopping: one that stopped alone would leave the others waiting forever
            shared = torch.tensor(
                [self.elapsed, float(self._stop_requested)],
                dtype=torch.float64,
                device=self.device,
            )
            torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
            elapsed, stop = shared.tolist()
            self._shared_elapsed = elapsed
            if stop:  # on every rank after this step; PeriodicCheckpoint.on_exception saves
                raise SIGTERMException()
        elif config.max_minutes is None:
            return
        else:
            elapsed = self.elapsed
        if config.max_minutes is not None and elapsed >= 60.0 * config.max_minutes:
            if self.global_rank == 0:
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
        """Rank 0's generator under ``generator`` (a one-process checkpoint as before);
        under DDP every rank's too, gathered (a collective: every rank saves together)."""
        state = self.generator.get_state() if self.generator is not None else None
        checkpoint["semdenoise"] = {"elapsed": self.elapsed, "generator": state}
        world = self.trainer.world_size
        if world > 1 and state is not None:
            local = state.to(self.device)  # NCCL gathers on the GPU
            gathered = [torch.empty_like(local) for _ in range(world)]
            torch.distributed.all_gather(gathered, local)
            checkpoint["semdenoise"]["generators"] = [g.cpu() for g in gathered]
            checkpoint["semdenoise"]["world_size"] = world

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("semdenoise", {})
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self._restored_step = int(checkpoint.get("global_step", 0))
        generator = state.get("generator")
        states = state.get("generators") or ([generator] if generator is not None else None)
        self._restored_generator_states = states
        world = self.trainer.world_size
        if states is not None and len(states) != world and self.global_rank == 0:
            logger.warning(
                "resuming a run of %d process(es) with %d: weights, optimiser and step "
                "continue; each process's sampling is reseeded from (seed, rank, step %d)",
                len(states),
                world,
                self._restored_step,
            )

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
        if not isinstance(exception, KeyboardInterrupt | SystemExit):  # Ctrl-C, SIGTERM
            return
        if trainer.world_size > 1 and not isinstance(exception, SIGTERMException):
            # Saving is collective (generators gathered, a barrier): only a stop that
            # every rank takes after the same step (TrainingModule.on_train_batch_end
            # raises SIGTERMException there) can save; after a second Ctrl-C or a dead
            # process, waiting for all would hang, and the last periodic checkpoint stands.
            logger.warning("interrupted: the checkpoint of step <= %d stands", trainer.global_step)
            return
        self.save(trainer, module)


class StepIndices(torch.utils.data.Dataset):
    """A stand-in dataset: each item is a step number; the module samples the data."""

    def __len__(self) -> int:
        return STEPS_PER_EPOCH

    def __getitem__(self, index: int) -> int:
        return index


def validation_loader(bank) -> torch.utils.data.DataLoader | None:
    """One validation image per batch (indices; the module holds the images).

    Under DDP every process validates every image (no distributed sampler): the
    replicas are identical, so the values logged (``sync_dist``) are those of one
    process, exactly, and a process done early would only wait at the next step."""
    if bank is None:
        return None
    return torch.utils.data.DataLoader(range(bank.count), batch_size=None)


def accelerator_for(device: str, devices: int = 1) -> str:
    if device == "gpu" and not torch.cuda.is_available():
        raise InputError("--device gpu: no GPU is available on this machine")
    gpus = torch.cuda.device_count() if devices > 1 and device != "cpu" else 0
    if gpus and devices > gpus:
        raise InputError(
            f"--devices {devices}: this machine has {gpus} GPU(s); use at most that many "
            "per node, or --device cpu"
        )
    return {"auto": "auto", "cpu": "cpu", "gpu": "gpu"}[device]


def strategy_for(module: TrainingModule) -> str | DDPStrategy:
    """One process: Lightning's default. More: DDP, whose process-group backend Lightning
    picks from the accelerator (gloo on CPU, NCCL on GPUs)."""
    config = module.train_config
    if config.devices * config.num_nodes == 1:
        return "auto"
    return DDPStrategy(find_unused_parameters=module.ddp_find_unused_parameters)


def cluster_plugins(config: TrainConfig) -> list[SLURMEnvironment]:
    """Under SLURM ``srun`` (every task runs the command; Lightning's SLURMEnvironment
    reads the ranks): refuse in one line --devices/--num-nodes that differ from the
    allocation, and turn Lightning's auto-requeue off, whose SIGUSR1 handler saves a
    checkpoint of its own from inside the signal handler (resubmit with --resume)."""
    if config.devices * config.num_nodes == 1 or not SLURMEnvironment.detect():
        return []
    for variable, value, option in (
        ("SLURM_NTASKS_PER_NODE", config.devices, "--devices"),
        ("SLURM_NNODES", config.num_nodes, "--num-nodes"),
    ):
        given = os.environ.get(variable, "")
        if given.isdigit() and int(given) != value:
            raise InputError(
                f"{option} {value}: this SLURM job runs {given} ({variable}); give {option} {given}"
            )
    return [SLURMEnvironment(auto_requeue=False)]


def end_other_ranks(trainer: L.Trainer) -> None:
    """After a DDP fit only global rank 0 goes on (statistics, model file, settings,
    "wrote ..."); any other process ends here, cleanly, before anything is written.

    Ending the process (rather than returning to the caller) holds for the CLI, which
    Lightning re-runs for every rank, and for a script started by torchrun or srun
    alike: nothing after the training call runs twice.
    """
    if trainer.world_size == 1:
        return
    if torch.distributed.is_initialized():  # no collective follows: rank 0 goes on alone
        torch.distributed.destroy_process_group()
    if trainer.global_rank != 0:
        logger.debug("rank %d done", trainer.global_rank)
        sys.stdout.flush()
        sys.exit(0)


def check_checkpoint(path: Path, module: TrainingModule) -> dict[str, Any]:
    """Refuse, in one line, a checkpoint that is unreadable, unsafe or from another
    network; return it."""
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
    return checkpoint


LOG_FILE = Path("logs") / "metrics.csv"


def earlier_log(checkpoint_dir: Path | None, until_step: int) -> list[dict[str, str]]:
    """The rows of a resumed run's loss log up to its checkpoint's step, which Lightning's
    CSV logger would delete when the resumed run writes its own; :func:`merge_log`
    writes them back in front."""
    if checkpoint_dir is None or not (checkpoint_dir / LOG_FILE).is_file():
        return []
    with open(checkpoint_dir / LOG_FILE, newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) < until_step]


def merge_log(checkpoint_dir: Path | None, earlier: list[dict[str, str]]) -> None:
    """Put the earlier rows back in front of the resumed run's (columns: the union)."""
    if checkpoint_dir is None or not earlier:
        return
    path = checkpoint_dir / LOG_FILE
    later = []
    if path.is_file():
        with open(path, newline="") as handle:
            later = list(csv.DictReader(handle))
    rows = earlier + later
    columns = sorted(set().union(*rows), key=lambda c: (c != "step", c))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


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
    resume_from, earlier = None, []
    if resume:
        if checkpoint_dir is None or not (checkpoint_dir / LAST_CHECKPOINT).is_file():
            raise InputError(f"--resume: no checkpoint found in {checkpoint_dir}")
        resume_from = checkpoint_dir / LAST_CHECKPOINT
        step = int(check_checkpoint(resume_from, module).get("global_step", 0))
        earlier = earlier_log(checkpoint_dir, step)
    callbacks = list(callbacks)
    logger_ = False
    if checkpoint_dir is not None:
        callbacks.append(PeriodicCheckpoint(checkpoint_dir, config.checkpoint_every))
        from lightning.pytorch.loggers import CSVLogger

        logger_ = CSVLogger(save_dir=checkpoint_dir, name="logs", version="")
    trainer = L.Trainer(
        accelerator=accelerator_for(config.device, config.devices),
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=strategy_for(module),
        # the loaders hold step numbers and validation indices, not data: each process
        # samples its own share (ImageBank.for_rank) and validates every image
        use_distributed_sampler=False,
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
        plugins=[AtomicCheckpointIO(), *cluster_plugins(config)],
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
        # a resumed run's earlier log rows are kept (earlier_log, merge_log)
        warnings.filterwarnings(
            "ignore", ".*Experiment logs directory .* exists and is not empty.*"
        )
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
            finally:
                if trainer.global_rank == 0:
                    merge_log(checkpoint_dir, earlier)
    end_other_ranks(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {
        "steps": int(trainer.global_step),
        "seconds": round(module.elapsed, 2),
        "metrics": metrics,
    }
