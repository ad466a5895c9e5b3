"""Outputs appear whole or not at all, and what killed writers left behind is cleaned up."""

import subprocess
import sys

import numpy as np
import pytest

import semdenoise as sd
from semdenoise.io import write_image
from semdenoise.io.atomic import stale_siblings, temporary_sibling
from semdenoise.training.runner import AtomicCheckpointIO


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has ended (a SIGKILLed writer looks like this)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def leftovers(folder, name, dead_pid, live_pid):
    """What killed (dead pid, or an earlier version's name) and running writers leave."""
    stale = [
        folder / f".{name}.{dead_pid}-0123abcd.tmp{'.' + name.split('.')[-1]}",
        folder / f".{name}.{dead_pid}-89abcdef.old",
        folder / f".{name}.deadbeef.tmp.{name.split('.')[-1]}",  # before ids were in names
    ]
    running = folder / f".{name}.{live_pid}-00000000.tmp.{name.split('.')[-1]}"
    for path in [*stale, running]:
        path.write_bytes(b"half a file")
    (folder / f".{stale[1].name}").mkdir()  # a folder is only ours if it matches the name
    (folder / f".other{name}.{dead_pid}-0123abcd.old").write_bytes(b"someone else's")
    return stale, running


def test_temporary_names_carry_the_writer_and_are_recognised(tmp_path):
    target = tmp_path / "out.tif"
    tmp, old = temporary_sibling(target), temporary_sibling(target, "old")
    assert tmp.name.startswith(".out.tif.") and tmp.suffix == ".tif" and old.suffix == ".old"
    for path in (tmp, old):
        path.write_bytes(b"x")
    assert stale_siblings(target) == []  # written by this process, which runs


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".zarr"])
def test_writing_an_output_removes_what_killed_writers_left(tmp_path, dead_pid, live_pid, suffix):
    name = f"out{suffix}"
    stale, running = leftovers(tmp_path, name, dead_pid, live_pid)
    assert stale_siblings(tmp_path / name) == sorted(stale)
    write_image(tmp_path / name, np.ones((8, 8), np.float32))
    assert not any(path.exists() for path in stale)
    assert running.exists()  # a writer still at work keeps its file
    assert (tmp_path / f".other{name}.{dead_pid}-0123abcd.old").exists()


def test_model_files_and_checkpoints_clean_up_too(tmp_path, dead_pid, live_pid, tiny_unet):
    from semdenoise.models.normalization import Normalization
    from semdenoise.models.trained import TrainedModel
    from semdenoise.models.unet import UNet

    model = TrainedModel("n2v", {"denoiser": UNet(tiny_unet)}, Normalization(0.0, 1.0), {})
    stale, running = leftovers(tmp_path, "m.pt", dead_pid, live_pid)
    sd.save_model(model, tmp_path / "m.pt")
    assert not any(p.exists() for p in stale) and running.exists()
    stale, running = leftovers(tmp_path, "last.ckpt", dead_pid, live_pid)
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert not any(p.exists() for p in stale) and running.exists()


def test_a_zarr_run_removes_an_old_copy_left_mid_replace(tmp_path, dead_pid):
    image = np.random.default_rng(0).normal(100, 20, size=(40, 40)).astype(np.float32)
    write_image(tmp_path / "in.zarr", image)
    old = tmp_path / f".out.zarr.{dead_pid}-0123abcd.old"
    old.mkdir()
    (old / "zarr.json").write_text("{}")
    from semdenoise.models.normalization import Normalization
    from semdenoise.models.trained import TrainedModel
    from semdenoise.models.unet import UNet

    net = UNet(sd.UNetConfig(depth=1, base_channels=4)).eval()
    model = TrainedModel("n2v", {"denoiser": net}, Normalization(100.0, 20.0), {})
    sd.denoise_zarr(model, tmp_path / "in.zarr", tmp_path / "out.zarr")
    assert not old.exists() and (tmp_path / "out.zarr").is_dir()
