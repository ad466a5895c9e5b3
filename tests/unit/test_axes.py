"""Declared axes: layouts to (S, C, Z, Y, X) and back, and the commands that take them."""

import numpy as np
import pytest

import semdenoise as sd
from semdenoise.errors import InputError
from semdenoise.io.axes import Layout, default_axes, without_channels
from semdenoise.models.normalization import Normalization
from semdenoise.models.unet import UNet


@pytest.mark.parametrize(
    ("axes", "shape", "canonical"),
    [
        ("YX", (5, 6), (1, 1, 1, 5, 6)),
        ("SYX", (3, 5, 6), (3, 1, 1, 5, 6)),
        ("CYX", (2, 5, 6), (1, 2, 1, 5, 6)),
        ("YXC", (5, 6, 2), (1, 2, 1, 5, 6)),
        ("ZCYX", (4, 2, 5, 6), (1, 2, 4, 5, 6)),
        ("TSCZYX", (2, 3, 2, 4, 5, 6), (6, 2, 4, 5, 6)),
        ("xys", (5, 6, 3), (3, 1, 1, 6, 5)),
    ],
)
def test_a_layout_goes_to_sczyx_and_back(axes, shape, canonical):
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    layout = Layout.of(array, axes, source="a.tif")
    data = layout.canonical(array)
    assert data.shape == canonical
    assert np.array_equal(layout.restore(data), array)
    assert layout.restore(data[:, :1], channels=False).shape == tuple(
        side for letter, side in zip(layout.axes, shape, strict=True) if letter != "C"
    )


def test_time_is_folded_into_samples_in_order():
    array = np.random.default_rng(0).random((2, 3, 5, 6))  # T, S, Y, X
    data = Layout.of(array, "TSYX", source="a").canonical(array)
    assert np.array_equal(data[1, 0, 0], array[1, 0])  # S=0, T=1
    assert np.array_equal(data[2, 0, 0], array[0, 1])  # S=1, T=0


def test_channel_planes_keep_their_channels_and_bare_planes_do_not():
    array = np.zeros((3, 2, 8, 9))
    planes = Layout.of(array, "SCYX", source="a").planes(array)
    assert len(planes) == 3 and planes[0].shape == (2, 8, 9)
    stack = np.zeros((4, 8, 9))
    assert [p.shape for p in Layout.of(stack, None, source="a").planes(stack)] == [(8, 9)] * 4
    assert [v.shape for v in Layout.of(stack, None, volume=True, source="a").volumes(stack)] == [
        (4, 8, 9)
    ]


def test_defaults_are_what_undeclared_arrays_always_meant():
    assert default_axes(2, volume=False) == "YX"
    assert default_axes(3, volume=False) == "SYX"
    assert default_axes(3, volume=True) == "ZYX"
    assert default_axes(4, volume=False) is None
    assert without_channels("SCYX") == "SYX" and without_channels(None) is None


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ("CQYX", r"^a\.tif: axes 'CQYX' name unknown axis 'Q'"),
        ("CCYX", r"^a\.tif: axes 'CCYX' name axis 'C' twice$"),
        ("SCY", r"^a\.tif: axes 'SCY' must include Y and X$"),
        ("CYX", r"^a\.tif: 4-D array of shape \(2, 3, 5, 6\) does not match axes 'CYX'"),
    ],
)
def test_bad_axes_are_one_line_errors_naming_the_source(axes, message):
    with pytest.raises(InputError, match=message):
        Layout.of(np.zeros((2, 3, 5, 6)), axes, source="a.tif")


def test_an_undeclared_4d_array_asks_for_axes():
    with pytest.raises(InputError, match=r"declare other layouts with --axes"):
        Layout.of(np.zeros((2, 3, 5, 6)), None, source="a.tif")


def _n2v_model(in_channels=1, channels="together"):
    config = sd.UNetConfig(
        depth=1,
        base_channels=4,
        in_channels=in_channels,
        out_channels=in_channels,
        channels=channels,
    )
    normalization = Normalization(
        mean=0.0 if in_channels == 1 else (0.0,) * in_channels,
        std=1.0 if in_channels == 1 else (1.0,) * in_channels,
    )
    return sd.TrainedModel(
        kind="n2v", networks={"denoiser": UNet(config).eval()}, normalization=normalization
    )


def test_denoise_follows_the_declared_axes():
    model = _n2v_model()
    stack = np.random.default_rng(1).random((3, 16, 20)).astype(np.float32)
    expected = sd.denoise(model, stack)
    moved = np.moveaxis(stack, 0, -1)  # Y, X, S
    result = sd.denoise(model, moved, axes="YXS")
    assert result.shape == moved.shape
    np.testing.assert_allclose(np.moveaxis(result, -1, 0), expected, atol=1e-5)


def test_a_multichannel_model_wants_its_channels_declared():
    model = _n2v_model(in_channels=2)
    image = np.random.default_rng(1).random((2, 16, 20)).astype(np.float32)
    with pytest.raises(InputError, match=r"^image: this model takes 2 channels; declare"):
        sd.denoise(model, image)
    with pytest.raises(
        InputError, match=r"^image: 1 channel\(s\) \(axes SYX\), this model takes 2"
    ):
        sd.denoise(model, image, axes="SYX")
    assert sd.denoise(model, image, axes="CYX").shape == (2, 16, 20)
    model.training["axes"] = "CYX"  # trained with declared axes: assumed again
    assert sd.denoise(model, image).shape == (2, 16, 20)


def test_separate_channels_are_denoised_independently():
    model = _n2v_model(in_channels=2, channels="separate")
    image = np.random.default_rng(2).random((2, 16, 20)).astype(np.float32)
    changed = image.copy()
    changed[1] += 3.0
    before, after = sd.denoise(model, image, axes="CYX"), sd.denoise(model, changed, axes="CYX")
    np.testing.assert_array_equal(before[0], after[0])
    assert not np.allclose(before[1], after[1])


def test_per_channel_normalisation_round_trips():
    ramp = np.arange(16.0).reshape(4, 4)
    images = [np.stack([ramp + 10.0, ramp * 100])]
    norm = Normalization.fit(images, channels=2)
    assert norm.channels == 2 and norm.mean[0] == 17.5 and norm.mean[1] == 750.0
    np.testing.assert_allclose(norm.denormalize(norm.normalize(images[0])), images[0], atol=1e-3)
    assert Normalization(**norm.to_dict()) == norm


def test_a_constant_channel_is_named():
    image = np.stack([np.arange(16.0).reshape(4, 4), np.full((4, 4), 3.0)])
    with pytest.raises(InputError, match=r"^training images: channel 1 has the same value"):
        Normalization.fit([image], channels=2)


def test_a_3d_model_trains_and_denoises_two_channel_volumes():
    rng = np.random.default_rng(4)
    zz, yy, xx = np.mgrid[:8, :24, :24]
    clean = 100.0 * ((zz - 4) ** 2 + (yy - 12) ** 2 + (xx - 12) ** 2 < 30)
    volume = np.stack([clean, 0.5 * clean + 20]) + rng.normal(0, 5, (2, 8, 24, 24))
    model = sd.train_n2v(
        volume.astype(np.float32),
        axes="CZYX",
        unet=sd.UNetConfig(dims=3, depth=1, base_channels=4),
        train=sd.TrainConfig(steps=2, batch_size=1, crop_size=16, crop_depth=4, val_fraction=0),
    )
    assert model.denoiser.config.in_channels == 2 and model.normalization.channels == 2
    moved = np.moveaxis(volume, 0, -1).astype(np.float32)  # Z, Y, X, C
    denoised = sd.denoise(model, moved, axes="ZYXC", tta=True)
    assert denoised.shape == moved.shape and np.isfinite(denoised).all()


def test_partial_labels_pair_with_channel_images_and_xy_is_transposed():
    from semdenoise.training.loading import load_training_images, load_training_labels

    rng = np.random.default_rng(5)
    images = [rng.random((2, 16, 20)).astype(np.float32) for _ in range(2)]
    named = load_training_images(images, min_size=4, axes="CYX")
    assert [image.shape for _, image in named] == [(2, 16, 20)] * 2
    mask = (images[0][0] > 0.5).astype(np.uint8)
    paired = load_training_labels([mask, None], images, named, axes="CYX")
    assert paired[0][1].shape == (16, 20) and paired[1] == ("labels[1] (unlabelled)", None)
    flat = load_training_images([images[0][0]], min_size=4, axes="XY")
    np.testing.assert_array_equal(flat[0][1], images[0][0].T)
