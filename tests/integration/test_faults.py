"""Training faults through the real command line: SIGKILL at random moments, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import semdenoise as sd
from semdenoise.training.runner import LAST_CHECKPOINT, PeriodicCheckpoint, checkpoint_dir_for

STEPS = 240
TRAIN = [
    "--steps",
    str(STEPS),
    "--checkpoint-every",
    "10",
    "--depth",
    "1",
    "--base-channels",
    "4",
    "--batch-size",
    "2",
    "--val-fraction",
    "0",
    "--no-progress",
    "--seed",
    "3",
]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# Training steps of a tiny network take a millisecond on a fast machine: the child waits
# 20 ms per step, so the few steps between a checkpoint and a kill never finish the run.
SLOW_STEPS = """
import sys, time
import semdenoise.training.n2v as n2v
from semdenoise.cli import main

real = n2v.n2v_loss

def slow(*args):
    time.sleep(0.02)
    return real(*args)

n2v.n2v_loss = slow
sys.argv = ["semdenoise", *sys.argv[1:]]
main()
"""


def train_command(images, out) -> list[str]:
    return [sys.executable, "-c", SLOW_STEPS, "train", "n2v", str(images), "--out", str(out)]


def start(images, out, *extra: str) -> subprocess.Popen:
    """The CLI in a child process; its stderr goes to a file beside the model."""
    command = train_command(images, out) + TRAIN + list(extra)
    with open(f"{out}.stderr", "ab") as err:
        return subprocess.Popen(
            command,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
            # a suite started in the background (`make test &`) inherits an ignored
            # SIGINT, and Python then installs no KeyboardInterrupt handler: give the
            # child the default a user's terminal gives it
            preexec_fn=_default_sigint,
        )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stderr_of(out) -> str:
    return Path(f"{out}.stderr").read_text()


def wait_for_progress(process: subprocess.Popen, out, beyond: int | None) -> None:
    """Until the run checkpoints past step ``beyond`` (or ends): the kill lands in training."""
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        step = checkpoint_step(out)
        if step is not None and (beyond is None or step > beyond):
            return
        time.sleep(0.05)


def checkpoint_step(out) -> int | None:
    path = checkpoint_dir_for(out) / LAST_CHECKPOINT
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except FileNotFoundError:
        return None


@pytest.fixture
def images(tmp_path, noisy_stack):
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, np.tile(noisy_stack[1], (1, 2, 2)), photometric="minisblack")
    return path


def test_sigkill_at_random_moments_then_resume_ends_as_an_uninterrupted_run(tmp_path, images):
    straight = tmp_path / "straight.pt"
    assert start(images, straight).wait(timeout=300) == 0, stderr_of(straight)

    out = tmp_path / "killed.pt"
    rng = np.random.default_rng(7)
    kills, resumed_from = 0, []
    while True:
        step = checkpoint_step(out)  # a kill mid-write must still leave a loadable one
        if step is not None:
            resumed_from.append(step)
        process = start(images, out, *(["--resume"] if step is not None else []))
        if kills < 5:
            wait_for_progress(process, out, beyond=step)
            time.sleep(rng.uniform(0.0, 0.4))  # anywhere between two checkpoints
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                assert not out.exists()  # the model file appears at the end, whole
                continue
        assert process.wait(timeout=300) == 0, stderr_of(out)
        break
    # every kill left a loadable checkpoint and no resume went backwards
    assert resumed_from == sorted(resumed_from) and len(set(resumed_from)) == len(resumed_from)
    assert kills == 5, (kills, resumed_from)
    a = torch.load(straight, weights_only=True)
    b = torch.load(out, weights_only=True)
    assert b["training"]["steps"] == STEPS
    for name, value in a["networks"]["denoiser"]["state_dict"].items():
        torch.testing.assert_close(
            b["networks"]["denoiser"]["state_dict"][name], value, rtol=0, atol=1e-6
        )
    loss_a, loss_b = (m["training"]["metrics"]["train_loss"] for m in (a, b))
    print(f"{kills} SIGKILLs, resumed from steps {resumed_from}; final loss {loss_b} vs {loss_a}")


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_finishes(tmp_path, images):
    out = tmp_path / "n2v.pt"
    process = start(images, out, "--steps", "100000")
    deadline = time.monotonic() + 120
    while checkpoint_step(out) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:  # never leave a training process behind
        process.kill()
        process.wait()
        pytest.fail(f"no exit within 120 s of SIGINT; stderr: {stderr_of(out)[-2000:]}")
    assert code == 130, stderr_of(out)
    message = stderr_of(out).strip().splitlines()[-1]
    assert message.startswith("training interrupted at step") and "--resume" in message
    stopped_at = int(message.split("step ")[1].split(";")[0])
    assert checkpoint_step(out) == stopped_at > 0
    assert not out.exists()
    resumed = start(images, out, "--steps", str(stopped_at + 5), "--resume")
    assert resumed.wait(timeout=300) == 0, stderr_of(out)
    assert torch.load(out, weights_only=True)["training"]["steps"] == stopped_at + 5


def test_interrupt_in_the_library_raises_a_typed_error_and_gives_sigint_back(
    tmp_path, noisy_stack, tiny_unet, monkeypatch
):
    import semdenoise.training.n2v as n2v

    calls = []

    def interrupt_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_loss(*args)

    real_loss = n2v.n2v_loss
    monkeypatch.setattr(n2v, "n2v_loss", interrupt_at_step_5)
    handler = signal.getsignal(signal.SIGINT)
    out = tmp_path / "n2v.pt"
    train = sd.TrainConfig(steps=50, batch_size=1, val_fraction=0.0, checkpoint_every=100)
    with pytest.raises(sd.TrainingInterrupted, match="interrupted at step 4"):
        sd.train_n2v(noisy_stack[1], unet=tiny_unet, train=train, out=out, progress=False)
    assert signal.getsignal(signal.SIGINT) is handler
    assert checkpoint_step(out) == 4 and not out.exists()


def test_a_step_that_made_weights_non_finite_is_never_saved(tmp_path):
    class Trainer:  # what PeriodicCheckpoint uses of Lightning's, one process
        global_step = 3
        world_size = 1
        saved = 0

        def save_checkpoint(self, *args, **kwargs):
            self.saved += 1

    module = torch.nn.Linear(2, 2)
    trainer = Trainer()
    callback = PeriodicCheckpoint(tmp_path, every=1)
    callback.on_train_end(trainer, module)
    assert trainer.saved == 1
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    callback.on_train_end(trainer, module)
    callback.on_exception(trainer, module, KeyboardInterrupt())
    assert trainer.saved == 1


# The child pauses inside the output's write, after the temporary file holds every byte
# and before it is moved into place: the kill lands there by construction, on any machine.
PAUSE_IN_WRITE = """
import os, sys, time
import semdenoise.io.atomic as atomic
from semdenoise.cli import main

signal_base = sys.argv[-1]

def paused(new, path):
    open(signal_base + ".paused", "w").close()
    time.sleep(600)

atomic.move_into_place = paused
sys.argv = ["semdenoise", *sys.argv[1:-1]]
main()
"""


def paused_denoise(model, image, target, signal_base: Path) -> subprocess.Popen:
    """``semdenoise denoise`` that stops just before its output appears; it creates
    ``signal_base.paused`` when it gets there."""
    command = [sys.executable, "-c", PAUSE_IN_WRITE, "denoise", str(model), str(image)]
    with open(f"{signal_base}.stderr", "ab") as err:
        return subprocess.Popen(
            [*command, str(target), str(signal_base)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_denoise_never_leaves_a_partial_output_and_the_next_run_cleans_up(
    tmp_path, tiny_unet
):
    from semdenoise.models.normalization import Normalization
    from semdenoise.models.trained import TrainedModel
    from semdenoise.models.unet import UNet

    model = tmp_path / "m.pt"
    sd.save_model(
        TrainedModel(
            kind="n2v",
            networks={"denoiser": UNet(tiny_unet).eval()},
            normalization=Normalization(mean=0.0, std=1.0),
            training={},
        ),
        model,
    )
    image = tmp_path / "big.npy"
    np.save(image, np.random.default_rng(0).normal(size=(4, 96, 96)).astype(np.float32))
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "out.tif"
    signal_base = tmp_path / "signal"
    left = []
    for _ in range(2):  # two killed runs over the same output
        process = paused_denoise(model, image, target, signal_base)
        try:
            deadline = time.monotonic() + 120
            while not Path(f"{signal_base}.paused").exists() and process.poll() is None:
                assert time.monotonic() < deadline, "denoise never reached its write"
                time.sleep(0.02)
            assert process.poll() is None, Path(f"{signal_base}.stderr").read_text()[-2000:]
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        Path(f"{signal_base}.paused").unlink()
        assert not target.exists()  # killed before the move: no output, not half of one
        left.append(hidden(outputs))
    # each killed run leaves its whole temporary file; the second run, before writing,
    # removed the first one's
    assert [len(names) for names in left] == [1, 1] and left[0] != left[1], left
    assert left[1][0].startswith(".out.tif.") and left[1][0].endswith(".tmp.tif")
    done = subprocess.run(
        [sys.executable, "-m", "semdenoise.cli", "denoise", str(model), str(image), str(target)],
        env=ENV,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert tifffile.imread(target).shape == (4, 96, 96)
    assert hidden(outputs) == []  # the killed runs' temporary files are gone


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_resume_refuses_unsafe_unreadable_and_foreign_checkpoints(
    tmp_path, noisy_stack, tiny_unet, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "n2v.pt"
    train = sd.TrainConfig(steps=2, batch_size=1, val_fraction=0.0, checkpoint_every=1)
    sd.train_n2v(noisy_stack[1], unet=tiny_unet, train=train, out=out)
    checkpoint = checkpoint_dir_for(out) / LAST_CHECKPOINT
    good = checkpoint.read_bytes()
    more = train.model_copy(update={"steps": 4})
    with pytest.raises(sd.InputError, match="checkpoint of a different network"):
        other = sd.UNetConfig(depth=1, base_channels=4)
        sd.train_n2v(noisy_stack[1], unet=other, train=more, out=out, resume=True)
    evil = torch.load(checkpoint, weights_only=True)
    evil["semdenoise"]["payload"] = RunsCode()
    torch.save(evil, checkpoint)
    cases = [
        (checkpoint.read_bytes(), "could run code"),
        (good[:100], "truncated or foreign"),
        (b"garbage", "truncated or foreign"),
    ]
    for content, message in cases:
        checkpoint.write_bytes(content)
        with pytest.raises(sd.ModelFileError, match=message):
            sd.train_n2v(noisy_stack[1], unet=tiny_unet, train=more, out=out, resume=True)
    assert not (tmp_path / "pwned").exists()
    assert torch.load(out, weights_only=True)["training"]["steps"] == 2  # model untouched
