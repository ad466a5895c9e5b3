"""Distributed training (Lightning DDP, 2 CPU processes, gloo) through the real CLI.

Lightning's DDP launcher re-runs the command line for the other ranks, so these runs
happen in child processes, never inside pytest. Each training costs two interpreter
start-ups: the networks and images are tiny and the steps few.
"""

from __future__ import annotations

import os
import shutil
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
from semdenoise.training.runner import LAST_CHECKPOINT, checkpoint_dir_for
from semdenoise.training.sampling import ImageBank

STEPS = 24
TRAIN = [
    "--steps",
    str(STEPS),
    "--checkpoint-every",
    "4",
    "--depth",
    "1",
    "--base-channels",
    "4",
    "--val-fraction",
    "0",
    "--no-progress",
    "--device",
    "cpu",
    "--seed",
    "3",
]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

# A script file, not `python -c`: Lightning re-launches the other ranks from
# sys.argv[0]. Every step waits 0.1 s so the kill lands mid-run on any machine.
SLOW_CLI = """
import time
import semdenoise.training.n2v as n2v
from semdenoise.cli import main

real = n2v.n2v_loss

def slow(*args):
    time.sleep(0.1)
    return real(*args)

n2v.n2v_loss = slow
main()
"""


def semdenoise(*args: str, script: Path | None = None, **popen) -> subprocess.Popen:
    """The CLI in a child process (its own process group: a kill takes every rank)."""
    entry = [str(script)] if script is not None else ["-m", "semdenoise"]
    return subprocess.Popen(
        [sys.executable, *entry, *args], env=ENV, start_new_session=True, **popen
    )


def run(*args: str, timeout: float = 300) -> str:
    process = semdenoise(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:  # never leave ranks behind
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err[-3000:]
    return out


def checkpoint(out: Path) -> dict | None:
    try:
        return torch.load(checkpoint_dir_for(out) / LAST_CHECKPOINT, weights_only=True)
    except (FileNotFoundError, EOFError, RuntimeError):
        return None


def weights(model: Path, network: str = "denoiser") -> dict[str, torch.Tensor]:
    return torch.load(model, weights_only=True)["networks"][network]["state_dict"]


def keys(record: dict, prefix: str = "") -> set[str]:
    """Every key of a nested dict, dotted: the model file's format."""
    found = set()
    for key, value in record.items():
        found.add(prefix + key)
        if isinstance(value, dict):
            found |= keys(value, f"{prefix}{key}.")
    return found


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Five small noisy images (ranks get 3 and 2 of them)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    clean = 40 + 60 * np.exp(-((yy - 16) ** 2 + (xx - 12) ** 2) / 60.0)
    noisy = clean + rng.normal(0, 10, (5, 32, 32))
    path = tmp_path_factory.mktemp("ddp") / "noisy.tif"
    tifffile.imwrite(path, noisy.astype(np.float32), photometric="minisblack")
    return path


@pytest.fixture(scope="module")
def straight(images) -> Path:
    """An uninterrupted 2-process run."""
    out = images.with_name("straight.pt")
    printed = run("train", "n2v", str(images), "--out", str(out), *TRAIN, "--devices", "2")
    assert printed.count("wrote") == 1, printed  # rank 0 alone reports
    return out


def test_two_processes_write_one_model_of_the_one_process_format(images, straight, tmp_path):
    single = tmp_path / "single.pt"
    run("train", "n2v", str(images), "--out", str(single), *TRAIN)
    one, two = (torch.load(m, weights_only=True) for m in (single, straight))
    assert keys(one) == keys(two)
    assert two["training"]["steps"] == STEPS and two["training"]["train"]["devices"] == 2
    assert two["training"]["images"] == 5  # statistics on all images, not rank 0's share
    # the averaged gradients of two different batches: another model than one process's
    a, b = weights(single), weights(straight)
    assert any(not torch.equal(a[name], b[name]) for name in a)
    saved = checkpoint(straight)["semdenoise"]
    assert saved["world_size"] == 2 and torch.equal(saved["generators"][0], saved["generator"])
    assert not torch.equal(*saved["generators"])  # each rank its own stream
    target = tmp_path / "denoised.tif"
    run("denoise", str(straight), str(images), str(target))
    denoised = tifffile.imread(target)
    assert denoised.shape == (5, 32, 32) and np.isfinite(denoised).all()


def test_a_two_process_checkpoint_resumes_in_one_process_reseeded(
    images, straight, tmp_path, cli, caplog
):
    out = tmp_path / "one.pt"
    checkpoint_dir_for(out).mkdir()
    shutil.copy(checkpoint_dir_for(straight) / LAST_CHECKPOINT, checkpoint_dir_for(out))
    more = [*TRAIN[2:], "--steps", str(STEPS + 4), "--resume"]
    code, _, err = cli("train", "n2v", str(images), "--out", str(out), *more)
    assert code == 0, err
    assert "resuming a run of 2 process(es) with 1" in caplog.text
    assert torch.load(out, weights_only=True)["training"]["steps"] == STEPS + 4


def test_killed_two_process_run_resumes_to_the_uninterrupted_model(images, straight, tmp_path):
    out = tmp_path / "killed.pt"
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    log = open(tmp_path / "killed.stderr", "w")  # noqa: SIM115 (closed below)
    process = semdenoise(
        "train", "n2v", str(images), "--out", str(out), *TRAIN, "--devices", "2",
        script=script, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while checkpoint(out) is None and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # both ranks, mid-run
        process.wait()
        log.close()
    killed_at = checkpoint(out)
    assert killed_at is not None, (tmp_path / "killed.stderr").read_text()[-3000:]
    assert 0 < killed_at["global_step"] < STEPS and not out.exists()

    printed = run("train", "n2v", str(images), "--out", str(out), *TRAIN, "--devices", "2",
                  "--resume")  # fmt: skip
    assert "wrote" in printed
    assert torch.load(out, weights_only=True)["training"]["steps"] == STEPS
    assert checkpoint(out)["global_step"] == STEPS
    # every rank's generator came back: the resumed run is the uninterrupted one
    for name, value in weights(straight).items():
        torch.testing.assert_close(weights(out)[name], value, rtol=0, atol=1e-6)
    assert np.isfinite(sd.denoise(out, tifffile.imread(images))).all()


def test_sigterm_stops_both_ranks_after_the_same_step_with_a_checkpoint(images, tmp_path):
    """SLURM and torchrun signal every rank at once: no collective deadlock, exit 130."""
    out = tmp_path / "stopped.pt"
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    process = semdenoise(
        "train", "n2v", str(images), "--out", str(out), *TRAIN, "--devices", "2",
        script=script, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while checkpoint(out) is None and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err[-3000:]
    stopped = [line for line in err.splitlines() if line.startswith("training interrupted")]
    assert len(stopped) == 2 and stopped[0] == stopped[1], err[-3000:]  # the same step
    step = checkpoint(out)["global_step"]  # saved at that step, not only the periodic one
    assert f"at step {step};" in stopped[0] and not out.exists()


def test_segmenter_and_joint_train_with_two_processes(images, tmp_path):
    labels = tmp_path / "masks.tif"
    tifffile.imwrite(labels, (tifffile.imread(images) > 60).astype(np.uint8))
    small = [*TRAIN[2:], "--steps", "6", "--devices", "2"]
    seg = tmp_path / "seg.pt"
    run("train", "seg", str(images), "--labels", str(labels), "--out", str(seg), *small)
    assert torch.load(seg, weights_only=True)["training"]["steps"] == 6
    # supervised joint pre-trains the segmenter alone first: the denoiser's weights get
    # no gradient in those steps, which DDP must be told to expect
    joint = tmp_path / "joint.pt"
    run("train", "joint", str(images), "--labels", str(labels), "--out", str(joint), *small,
        "--pretrain-fraction", "0.5", "--no-pretrain-denoiser")  # fmt: skip
    assert torch.load(joint, weights_only=True)["training"]["steps"] == 6
    assert sd.segment(joint, tifffile.imread(images)).shape == (5, 32, 32)


def test_each_rank_samples_its_own_share_and_one_process_all():
    bank = ImageBank.from_arrays([np.full((8, 8), i, np.float32) for i in range(5)])
    bank.stacks.append(torch.full((2, 1, 4, 4), 9.0))  # a second shape: index 5 and 6
    assert bank.for_rank(0, 1) is bank
    shares = [bank.for_rank(rank, 3) for rank in range(3)]
    seen = sorted(int(share.image(i)[0, 0, 0, 0]) for share in shares for i in range(share.count))
    assert seen == [0, 1, 2, 3, 4, 9, 9]  # each image in exactly one share
    assert [share.count for share in shares] == [3, 2, 2]
    few = ImageBank.from_arrays([np.zeros((8, 8), np.float32)])
    assert few.for_rank(1, 2) is few  # fewer images than ranks: every rank takes all
