"""Streamed training: Zarr/TIFF images read crop by crop give the in-memory results."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
import zarr

import semdenoise as sd
from semdenoise.errors import InputError
from semdenoise.models.normalization import Normalization
from semdenoise.training import streaming
from semdenoise.training.streaming import BlockCache, LazyImage, lazy_images

TINY = sd.UNetConfig(depth=1, base_channels=4)
TINY_3D = sd.UNetConfig(dims=3, depth=1, base_channels=4, xy_only_levels=1)
NO_NOISE_MODEL = sd.NoiseConfig(model="none")


def run(stream: bool, **changes) -> sd.TrainConfig:
    values = dict(steps=5, batch_size=2, crop_size=24, val_every=2, stream=stream)
    return sd.TrainConfig(**(values | changes))


def write_zarr(path, array, chunks):
    stored = zarr.open_array(
        str(path), mode="w", shape=array.shape, chunks=chunks, dtype=array.dtype
    )
    stored[:] = array
    return path


def same_weights(first: sd.TrainedModel, second: sd.TrainedModel) -> None:
    for role, net in first.networks.items():
        other = second.networks[role].state_dict()
        for name, value in net.state_dict().items():
            assert torch.equal(value, other[name]), f"{role}.{name}"


@pytest.fixture
def stack(noisy_stack):
    """Six noisy 48x40 images (two of the shared fixture's stacks)."""
    _, noisy = noisy_stack
    return np.concatenate([noisy, noisy[::-1] * 0.9 + 3])


def test_streamed_n2v_equals_in_memory_on_data_that_fits(tmp_path, stack):
    path = write_zarr(tmp_path / "stack.zarr", stack, (2, 16, 16))
    kwargs = dict(unet=TINY, noise=NO_NOISE_MODEL)
    in_memory = sd.train_n2v(path, train=run(False), **kwargs)
    streamed = sd.train_n2v(path, train=run(True), **kwargs)
    assert streamed.training["loading"]["streamed"] is True
    assert in_memory.training["loading"] == {"streamed": False}
    assert streamed.normalization == in_memory.normalization
    same_weights(in_memory, streamed)
    assert streamed.training["blind_spot_mse"] == in_memory.training["blind_spot_mse"]


def test_streamed_3d_n2v_equals_in_memory(tmp_path):
    rng = np.random.default_rng(1)
    zz, yy, xx = np.mgrid[:20, :40, :40]
    volume = 50 * np.sin(xx / 5.0) * np.cos(yy / 7.0 + zz / 4.0) + rng.normal(0, 10, zz.shape)
    path = write_zarr(tmp_path / "volume.zarr", volume.astype(np.float32), (8, 16, 16))
    train = dict(crop_depth=8, crop_size=24, val_fraction=0.2)
    kwargs = dict(unet=TINY_3D, noise=NO_NOISE_MODEL)
    in_memory = sd.train_n2v(path, train=run(False, **train), **kwargs)
    streamed = sd.train_n2v(path, train=run(True, **train), **kwargs)
    assert streamed.training["validation_images"] == in_memory.training["validation_images"] == 1
    same_weights(in_memory, streamed)


@pytest.mark.parametrize("target", ["foreground", "instances"])
def test_streamed_segmenter_equals_in_memory(tmp_path, stack, target):
    labels = (stack > np.percentile(stack, 70)).astype(np.uint8)
    images = write_zarr(tmp_path / "images.zarr", stack, (3, 16, 16))
    masks = write_zarr(tmp_path / "labels.zarr", labels, (1, 32, 32))
    kwargs = dict(unet=TINY, target=target)
    in_memory = sd.train_seg(images, masks, train=run(False), **kwargs)
    streamed = sd.train_seg(images, masks, train=run(True), **kwargs)
    same_weights(in_memory, streamed)


def test_streamed_joint_with_partial_labels_equals_in_memory(tmp_path, stack):
    """A folder of TIFFs, labels for two of three files: the unlabelled one trains the
    denoiser only, streamed as in memory."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for k, name in enumerate("abc"):
        tifffile.imwrite(tmp_path / "images" / f"{name}.tif", stack[2 * k : 2 * k + 2])
        if name != "b":
            mask = (stack[2 * k : 2 * k + 2] > np.median(stack)).astype(np.uint8)
            tifffile.imwrite(tmp_path / "labels" / f"{name}.tif", mask)
    kwargs = dict(labels=tmp_path / "labels", unet=TINY)
    in_memory = sd.train_joint(tmp_path / "images", train=run(False), **kwargs)
    streamed = sd.train_joint(tmp_path / "images", train=run(True), **kwargs)
    assert streamed.training["labelled_images"] == in_memory.training["labelled_images"] == 4
    same_weights(in_memory, streamed)


def test_large_inputs_stream_by_default_and_fit_statistics_on_a_sample(
    tmp_path, stack, monkeypatch
):
    path = write_zarr(tmp_path / "stack.zarr", stack, (1, 16, 16))
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 1000)
    monkeypatch.setattr("semdenoise.training.loading.STREAM_ABOVE_BYTES", 1000)
    monkeypatch.setattr(streaming, "NORMALIZATION_SAMPLE", 3000)
    model = sd.train_n2v(path, unet=TINY, noise=NO_NOISE_MODEL, train=run(None, steps=2))
    loading = model.training["loading"]
    assert loading["streamed"] is True
    assert 3000 <= loading["normalization_pixels"] < stack[1:].size
    assert model.normalization.mean == pytest.approx(float(stack.mean()), rel=0.05)
    assert model.normalization.std == pytest.approx(float(stack.std()), rel=0.1)


def test_block_cache_reads_what_the_array_holds_and_stays_bounded(tmp_path):
    rng = np.random.default_rng(2)
    array = rng.integers(0, 60000, (3, 50, 70), dtype=np.uint16)
    stored = zarr.open_array(str(write_zarr(tmp_path / "a.zarr", array, (2, 16, 16))), mode="r")
    image = LazyImage("a.zarr[1]", stored, (1,), ((0, 50), (0, 70)))
    cache = BlockCache(4 * 16 * 16 * 2 * 2)  # four blocks
    for _ in range(30):
        y, x = rng.integers(0, 40), rng.integers(0, 60)
        h, w = rng.integers(1, 50 - y + 1), rng.integers(1, 70 - x + 1)
        window = (slice(y, y + h), slice(x, x + w))
        np.testing.assert_array_equal(cache.read(image, window), array[1][window])
        assert cache.bytes <= cache.max_bytes or len(cache.blocks) == 1
    half = image.split(0, 20)
    np.testing.assert_array_equal(cache.read(half[1], (slice(0, 30), slice(0, 70))), array[1, 20:])


def test_streamed_tiff_stack_reads_lazily(tmp_path, stack):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack.astype(np.uint16), tile=(16, 16))
    images = lazy_images([path], dims=2)
    assert [im.source for im in images] == [f"{path}[{k}]" for k in range(6)]
    cache = BlockCache(2**20)
    window = (slice(5, 30), slice(3, 35))
    np.testing.assert_array_equal(cache.read(images[4], window), stack.astype(np.uint16)[4][window])


def test_streamed_errors_are_one_line_and_name_the_file(tmp_path, stack):
    bad = stack.copy()
    bad[3, 10:40, 5:35] = np.nan
    path = write_zarr(tmp_path / "nan.zarr", bad, (1, 48, 40))
    with pytest.raises(InputError, match=r"nan\.zarr.*NaN"):
        sd.train_n2v(path, unet=TINY, noise=NO_NOISE_MODEL, train=run(True, steps=30))
    np.save(tmp_path / "stack.npy", stack)
    with pytest.raises(InputError, match=r"stack\.npy: streamed training reads"):
        sd.train_n2v(tmp_path / "stack.npy", unet=TINY, train=run(True))
    with pytest.raises(InputError, match="arrays in memory"):
        sd.train_n2v(stack, unet=TINY, train=run(True))
    images = write_zarr(tmp_path / "images.zarr", stack, (1, 16, 16))
    wrong = write_zarr(tmp_path / "wrong.zarr", np.zeros((6, 48, 39), np.uint8), (1, 16, 16))
    with pytest.raises(InputError, match=r"wrong\.zarr\[0\]: labels of shape \(48, 39\)"):
        sd.train_seg(images, wrong, unet=TINY, train=run(True))
    with pytest.raises(InputError, match="streamed training takes one-channel"):
        sd.train_n2v(images, unet=TINY, axes="CYX", train=run(True))


def test_cli_streams_a_zarr_and_records_it(tmp_path, stack, cli):
    path = write_zarr(tmp_path / "stack.zarr", stack, (1, 16, 16))
    out = tmp_path / "model.pt"
    code, _, err = cli(
        "train", "n2v", str(path), "--out", str(out), "--steps", "3", "--depth", "1",
        "--base-channels", "4", "--stream", "--cache-mb", "16", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    model = sd.load_model(out)
    assert model.training["loading"] == {
        "streamed": True,
        "normalization_pixels": 6 * 48 * 40,  # no validation image: int(0.1 * 6) = 0
        "cache_mb": 16,
    }
    assert sd.denoise(model, stack[0]).shape == (48, 40)


def test_blind_spot_statistics_of_one_huge_image_use_its_centre(stack):
    """In memory too, one image larger than the statistics' pixel budget is not
    predicted whole (a 8192² slice would need gigabytes of activations)."""
    from semdenoise.models.unet import UNet
    from semdenoise.training.n2v import blind_spot_statistics
    from semdenoise.training.sampling import ImageBank

    net = UNet(TINY).eval()
    unit = Normalization(mean=0.0, std=1.0)
    image = (stack[0] - stack.mean()) / stack.std()
    whole = ImageBank.from_arrays([image])
    centre = ImageBank.from_arrays([image[12:36, 8:32]])  # the central 24x24 of 48x40
    budget = blind_spot_statistics(net, whole, unit, NO_NOISE_MODEL, max_pixels=24 * 24)
    assert budget == blind_spot_statistics(net, centre, unit, NO_NOISE_MODEL)


def test_a_rank_streams_its_share_of_the_images(tmp_path, stack):
    images = lazy_images([write_zarr(tmp_path / "s.zarr", stack, (1, 16, 16))], dims=2)
    bank = streaming.StreamedBank(images, Normalization(0.0, 1.0), BlockCache(2**20))
    shares = [bank.for_rank(rank, 4) for rank in range(4)]
    assert [[im.source for im in share.images] for share in shares] == [
        [images[i].source for i in (r, r + 4) if i < 6] for r in range(4)
    ]
    assert bank.for_rank(0, 1) is bank and bank.for_rank(1, 7) is bank


def test_in_memory_images_too_large_to_train_whole_train_on_crops():
    from semdenoise.training.sampling import LARGE_IMAGE_CROP, ImageBank

    generator = torch.Generator().manual_seed(0)
    huge = ImageBank.from_arrays([np.zeros((2049, 2048), np.float32)])
    small = ImageBank.from_arrays([np.zeros((100, 120), np.float32)])
    assert huge.sample(2, None, generator).shape == (2, 1, LARGE_IMAGE_CROP, LARGE_IMAGE_CROP)
    assert small.sample(2, None, generator).shape == (2, 1, 100, 120)
