"""3-D segmenter and joint training on volumes with sparse labels (a few labelled slices,
``--ignore-label``, ``--background-label``), 3-D segmentation, the CLI, and the light-sheet
volume of ``../shared/data`` with its own sparse labels."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import semdenoise as sd
from semdenoise.errors import InputError
from semdenoise.models.targets import encode_labels
from semdenoise.training.loading import prepare_training_volumes
from semdenoise.training.sampling import ImageBank

TRAILMAP = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "trailmap_lightsheet_axons"
)
TINY_3D = sd.UNetConfig(dims=3, depth=2, base_channels=4, xy_only_levels=1)
LABELLED_Z = (4, 12, 20)
UNLABELLED, BACKGROUND, TUBE = 0, 1, 2  # as TRAILMAP spells them
SPARSE = {"ignore_label": UNLABELLED, "background_labels": (BACKGROUND,)}


def tubes(shape=(24, 48, 48), seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy, sparse labels, true mask): a few bright tubes running through Z, Gaussian
    noise sigma 15; labels on 3 slices only (0 unlabelled, 1 background, 2 tube)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    clean = np.full(shape, 20.0)
    mask = np.zeros(shape, bool)
    for _ in range(5):
        y0, x0 = rng.uniform(8, shape[1] - 8, 2)
        dy, dx = rng.uniform(-0.6, 0.6, 2)
        distance = (yy - (y0 + dy * zz)) ** 2 + (xx - (x0 + dx * zz)) ** 2
        clean += 100 * np.exp(-distance / 4.0)
        mask |= distance < 4.0
    noisy = (clean + rng.normal(0, 15, shape)).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    for z in LABELLED_Z:
        labels[z] = np.where(mask[z], TUBE, BACKGROUND)
    return noisy, labels, mask


def quick(steps: int = 10, **values) -> sd.TrainConfig:
    return sd.TrainConfig(steps=steps, crop_depth=8, crop_size=32, **values)


@pytest.fixture(scope="module")
def volume():
    return tubes()


@pytest.fixture(scope="module")
def seg_model(volume):
    noisy, labels, _ = volume
    return sd.train_seg(noisy, labels, unet=TINY_3D, train=quick(40), **SPARSE)


def test_labelled_crops_each_hold_labelled_voxels():
    _, labels, _ = tubes()
    target, weight = encode_labels(labels, labels.shape, **SPARSE)
    bank = ImageBank.from_arrays([np.zeros(labels.shape, np.float32)], [(target, weight)])
    generator = torch.Generator().manual_seed(0)
    crops = bank.labelled_crops(200, (2, 16, 16), generator)
    assert crops.shape == (200, 3, 2, 16, 16)
    assert bool((crops[:, 2].flatten(1).sum(1) > 0).all())
    uniform = bank.crops(200, (2, 16, 16), generator)  # 6 of 23 Z positions hold labels
    assert float((uniform[:, 2].flatten(1).sum(1) > 0).float().mean()) < 0.4
    # the labelled slice lands anywhere in the crop, not always at one place
    labelled_plane = crops[:, 2].flatten(2).sum(2).argmax(1)
    assert set(labelled_plane.tolist()) == {0, 1}
    dense = ImageBank.from_arrays([np.zeros((8, 16, 16), np.float32)], [encode_labels(
        np.ones((8, 16, 16), np.int64), (8, 16, 16))])  # fmt: skip
    assert dense.labelled_crops(3, (4, 8, 8), generator).shape == (3, 2, 4, 8, 8)


def test_background_labels_and_ignore_label_encode_sparse_labels():
    labels = np.array([[0, 1, 2, 3, 4]])
    target, weight = encode_labels(labels, labels.shape, ignore_label=0, background_labels=(1, 3))
    assert target.tolist() == [[0, 0, 1, 0, 1]] and weight.tolist() == [[0, 1, 1, 1, 1]]
    target, weight = encode_labels(labels, labels.shape)  # the default: 0 is background
    assert target.tolist() == [[0, 1, 1, 1, 1]] and weight.all()
    with pytest.raises(InputError, match="--ignore-label 1 is also a --background-label"):
        encode_labels(labels, labels.shape, ignore_label=1, background_labels=(1,))


def test_a_held_out_slab_keeps_its_own_labels_and_may_have_none():
    noisy, labels, _ = tubes()
    data = prepare_training_volumes(noisy, labels, unet=TINY_3D, val_fraction=0.1, seed=0, **SPARSE)
    train, val = data.train_bank.stacks[0][0], data.val_bank.stacks[0][0]
    target, weight = encode_labels(labels, labels.shape, **SPARSE)
    # the slab is cut along the longest axis of 24x48x48, Y (the first of the longest)
    np.testing.assert_array_equal(torch.cat([train[1], val[1]], dim=1).numpy(), target)
    np.testing.assert_array_equal(torch.cat([train[2], val[2]], dim=1).numpy(), weight)
    normalized = data.normalization.normalize(noisy)
    np.testing.assert_allclose(torch.cat([train[0], val[0]], dim=1).numpy(), normalized)
    # labels only in the first slices and a slab along Z: a validation slab without any
    # labelled voxel still trains and validates (its segmentation loss is 0)
    deep = np.concatenate([noisy, noisy], axis=0)[:, :24, :24]  # 48x24x24, Z longest
    top = np.zeros(deep.shape, np.uint8)
    top[2] = labels[4, :24, :24]
    model = sd.train_seg(
        deep, top, unet=TINY_3D, train=quick(2, val_fraction=0.2, val_every=1), **SPARSE
    )
    assert model.training["validation_images"] == 1
    assert model.training["metrics"]["val_loss"] == 0.0
    joint = sd.train_joint(
        deep, labels=top, unet=TINY_3D, train=quick(2, val_fraction=0.2, val_every=1), **SPARSE
    )
    assert joint.training["metrics"]["val_seg"] == 0.0
    assert np.isfinite(joint.training["metrics"]["val_n2v"])


def test_3d_segmenter_learns_from_sparse_labels_and_segments_a_volume(seg_model, volume, tmp_path):
    noisy, _, mask = volume
    assert seg_model.segmenter.config.dims == 3
    assert seg_model.training["background_labels"] == [BACKGROUND]
    probability = sd.segment(seg_model, noisy, probabilities=True)
    assert probability.shape == noisy.shape and probability.dtype == np.float32
    assert 0 <= probability.min() and probability.max() <= 1
    # learned from 3 labelled slices: tubes are more likely than background everywhere
    assert probability[mask].mean() > probability[~mask].mean() + 0.05
    binary = sd.segment(seg_model, noisy)
    assert binary.dtype == np.uint8 and set(np.unique(binary)) <= {0, 1}
    np.testing.assert_array_equal(binary, probability >= 0.5)
    objects = sd.segment(seg_model, noisy, instances=True)
    assert objects.dtype == np.uint16 and objects.shape == noisy.shape
    assert np.all((objects > 0) <= binary.astype(bool))  # objects of the mask, small ones dropped
    assert np.array_equal(np.unique(objects), np.arange(objects.max() + 1))
    out = tmp_path / "seg3d.pt"
    sd.save_model(seg_model, out)
    np.testing.assert_array_equal(sd.segment(sd.load_model(out), noisy), binary)


def test_3d_instances_are_connected_components_across_slices():
    from semdenoise.predict.instances import connected_instances

    mask = np.zeros((6, 10, 10), bool)
    mask[0:6, 2, 2] = True  # one tube through every slice
    mask[1, 5, 5] = mask[2, 6, 6] = mask[3, 7, 7] = True  # touching by corners only
    mask[4:6, 8:10, 0:2] = True  # 8 voxels
    mask[0, 9, 9] = True  # one voxel: dropped
    objects = connected_instances(mask, min_size=3)
    assert objects.max() == 3 and objects[0, 9, 9] == 0
    assert len(np.unique(objects[0:6, 2, 2])) == 1


def test_3d_instances_target_trains_and_separates_objects(volume):
    noisy, labels, _ = volume
    model = sd.train_seg(noisy, labels, unet=TINY_3D, target="instances", train=quick(3), **SPARSE)
    assert model.segmenter.config.out_channels == 3
    objects = sd.segment(model, noisy, instances=True)
    assert objects.shape == noisy.shape and objects.dtype in (np.uint16, np.uint32)


def test_3d_joint_training_with_sparse_labels(volume, tmp_path):
    noisy, labels, _ = volume
    n2v = sd.train_n2v(noisy, unet=TINY_3D, train=quick(2))
    model = sd.train_joint(
        noisy, labels=labels, init=n2v, unet=TINY_3D, train=quick(6), out=tmp_path / "j.pt",
        **SPARSE,
    )  # fmt: skip
    assert model.denoiser.config.dims == 3 and model.segmenter.config.dims == 3
    assert model.training["initialised_from_n2v"] and model.training["blind_spot_mse"] > 0
    loaded = sd.load_model(tmp_path / "j.pt")
    mask = sd.segment(loaded, noisy)
    assert mask.shape == noisy.shape and mask.dtype == np.uint8
    denoised = sd.denoise(loaded, noisy)
    assert denoised.shape == noisy.shape and np.isfinite(denoised).all()
    probability = sd.segment(loaded, noisy, probabilities=True)
    np.testing.assert_array_equal(mask, probability >= 0.5)
    with pytest.raises(InputError, match="a 3-D denoiser; train with --dims 3"):
        sd.train_joint(noisy, labels=labels, init=n2v, train=quick(1))


def test_bad_3d_seg_input_is_a_one_line_error(volume):
    noisy, labels, _ = volume
    cases = [
        (noisy[:, :, :40], labels, r"labels\[0\]: labels of shape \(24, 48, 48\) do not "
         r"match the volume volumes\[0\] of shape \(24, 48, 40\)"),
        (noisy[0], labels[4], "2-D image of shape"),
        (noisy, [labels, labels], "2 label volume"),
        (noisy, np.zeros_like(labels), "no labelled voxel"),
    ]  # fmt: skip
    for images, given, message in cases:
        for train in (sd.train_seg, sd.train_joint):
            with pytest.raises(InputError, match=message) as error:
                if train is sd.train_seg:
                    train(images, given, unet=TINY_3D, train=quick(1), **SPARSE)
                else:
                    train(images, labels=given, unet=TINY_3D, train=quick(1), **SPARSE)
            assert "\n" not in str(error.value)


def test_cli_trains_3d_seg_and_joint_and_segments_a_volume(cli, tmp_path, volume):
    noisy, labels, _ = volume
    images, label_file = tmp_path / "volume.tif", tmp_path / "labels.tif"
    tifffile.imwrite(images, noisy.astype(np.uint16), photometric="minisblack")
    tifffile.imwrite(label_file, labels, photometric="minisblack")
    tiny = ["--dims", "3", "--depth", "1", "--base-channels", "4", "--crop-depth", "8",
            "--crop-size", "16", "--steps", "3", "--no-progress", "--ignore-label", "0",
            "--background-label", "1", "--background-label", "3"]  # fmt: skip
    for command in ("seg", "joint"):
        out = tmp_path / f"{command}.pt"
        code, printed, err = cli(
            "train", command, str(images), "--labels", str(label_file), "--out", str(out), *tiny
        )
        assert code == 0, err
        assert "3 steps" in printed
        assert "dims: 3" in (tmp_path / f"{command}.pt.yaml").read_text()
        for option, dtype in [([], np.uint8), (["--probabilities"], np.float32),
                              (["--instances"], np.uint16)]:  # fmt: skip
            target = tmp_path / f"{command}{''.join(option)}.tif"
            code, _, err = cli("segment", str(out), str(images), str(target), *option)
            assert code == 0, err
            result = tifffile.imread(target)
            assert result.shape == noisy.shape and result.dtype == dtype
    assert sd.load_model(tmp_path / "seg.pt").training["background_labels"] == [1, 3]
    # a Zarr volume in, a Zarr mask out: the same mask
    sd.write_image(tmp_path / "volume.zarr", noisy.astype(np.uint16))
    code, _, err = cli("segment", str(tmp_path / "seg.pt"), str(tmp_path / "volume.zarr"),
        str(tmp_path / "mask.zarr"))  # fmt: skip
    assert code == 0, err
    np.testing.assert_array_equal(
        sd.read_image(tmp_path / "mask.zarr"), tifffile.imread(tmp_path / "seg.tif")
    )
    flat, wrong = tmp_path / "flat.tif", tmp_path / "wrong.tif"
    tifffile.imwrite(flat, noisy[0].astype(np.uint16))
    tifffile.imwrite(wrong, labels[:, :40])
    for args, message in [
        (["train", "seg", str(images), "--labels", str(wrong)], f"{wrong}: labels of shape"),
        (["train", "joint", str(images), "--labels", str(wrong)], f"{wrong}: labels of shape"),
        (["train", "seg", str(flat), "--labels", str(flat)], "2-D image of shape"),
        (["segment", str(tmp_path / "seg.pt"), str(flat), str(tmp_path / "s.tif")],
         "needs a (Z, Y, X) volume"),
    ]:  # fmt: skip
        extra = ["--out", str(tmp_path / "x.pt"), *tiny] if args[0] == "train" else []
        code, _, err = cli(*args, *extra)
        assert code == 2 and err.startswith("error: ") and message in err, err
        assert err.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.skipif(not (TRAILMAP / "labels.tif").is_file(), reason="../shared/data absent")
def test_lightsheet_joint_3d_with_its_sparse_labels(cli, tmp_path):
    """``train joint --dims 3`` on the real light-sheet volume with its labels as they are
    (0 unlabelled, 1 background, 2 and 4 axon), then ``segment`` the volume."""
    out = tmp_path / "joint.pt"
    code, _, err = cli(
        "train", "joint", str(TRAILMAP / "volume.tif"), "--labels", str(TRAILMAP / "labels.tif"),
        "--out", str(out), "--dims", "3", "--depth", "1", "--base-channels", "4",
        "--crop-depth", "8", "--crop-size", "32", "--steps", "4", "--no-progress",
        "--ignore-label", "0", "--background-label", "1", "--background-label", "3",
    )  # fmt: skip
    assert code == 0, err
    mask = tmp_path / "mask.tif"
    code, _, err = cli("segment", str(out), str(TRAILMAP / "volume.tif"), str(mask))
    assert code == 0, err
    result = tifffile.imread(mask)
    assert result.shape == (101, 120, 120) and set(np.unique(result)) <= {0, 1}


def test_3d_unsupervised_joint_with_a_3d_style_segmenter(volume):
    noisy, _, mask = volume
    style = sd.train_seg(noisy, mask.astype(np.uint8), unet=TINY_3D, loss="mse", train=quick(2))
    model = sd.train_joint(noisy, style_segmenter=style, unet=TINY_3D, train=quick(2))
    assert model.training["mode"] == "unsupervised" and model.denoiser.config.dims == 3
    assert sd.denoise(model, noisy).shape == noisy.shape
    with pytest.raises(InputError, match="a 3-D segmenter; train with --dims 3"):
        sd.train_joint(noisy, style_segmenter=style, train=quick(1))
