"""The napari plugin's work on a ViewerModel (no display): train on layers, add results.

The real viewer and the widget are in test_napari_viewer.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.layers import Layer

import semdenoise as sd
from semdenoise.napari_plugin.layers import (
    TrainingProgress,
    denoised_layer,
    describe_model,
    layer_axes,
    segmented_layer,
    train_on_layers,
)
from semdenoise.napari_plugin.samples import noisy_somata


def add(viewer: ViewerModel, layer_data) -> Layer:
    data, kwargs, layer_type = layer_data
    return viewer.add_layer(Layer.create(data, kwargs, layer_type))


@pytest.fixture
def viewer(noisy_stack) -> ViewerModel:
    clean, noisy = noisy_stack
    viewer = ViewerModel()
    viewer.add_image(noisy, name="noisy", scale=(1.0, 0.5, 0.5), translate=(0, 10, 20))
    viewer.add_labels((clean > 60).astype(np.uint8), name="masks", scale=(1.0, 0.5, 0.5))
    return viewer


def test_n2v_trains_on_a_layer_and_adds_a_denoised_layer_in_place(viewer, tiny_unet):
    noisy = viewer.layers["noisy"]
    steps = []
    progress = TrainingProgress(report=lambda step, total, loss: steps.append((step, total)))
    model = train_on_layers("n2v", [noisy], steps=3, unet=tiny_unet, progress=progress)
    assert model.kind == "n2v" and model.training["steps"] == 3
    assert steps[-1] == (3, 3)
    assert "Noise2Void" in describe_model(model)

    layer = add(viewer, denoised_layer(model, noisy))
    assert layer.name == "noisy denoised"
    assert layer.data.shape == noisy.data.shape and layer.data.dtype == np.float32
    assert np.isfinite(layer.data).all()
    np.testing.assert_allclose(layer.scale, noisy.scale)
    np.testing.assert_allclose(layer.translate, noisy.translate)
    # the same numbers as the library's denoise of the same array
    np.testing.assert_array_equal(layer.data, sd.denoise(model, noisy.data, axes="SYX"))


def test_neighbor2neighbor_trains_on_a_layer(viewer, tiny_unet):
    noisy = viewer.layers["noisy"]
    model = train_on_layers("neighbor2neighbor", [noisy], steps=2, unet=tiny_unet)
    assert model.training["masking"]["objective"] == "neighbor2neighbor"
    assert describe_model(model).startswith("Neighbor2Neighbor denoiser")
    layer = add(viewer, denoised_layer(model, noisy))
    np.testing.assert_array_equal(layer.data, sd.denoise(model, noisy.data, axes="SYX"))


def test_stop_ends_training_early_with_a_complete_model(viewer, tiny_unet):
    progress = TrainingProgress()
    progress.stop()  # asked before the first step: training ends after it
    noisy = viewer.layers["noisy"]
    model = train_on_layers("n2v", [noisy], steps=50, unet=tiny_unet, progress=progress)
    assert model.training["steps"] == 1
    assert np.isfinite(sd.denoise(model, viewer.layers["noisy"].data[0])).all()


def test_joint_model_segments_a_layer_into_instances_and_a_mask(viewer, tiny_unet):
    noisy, masks = viewer.layers["noisy"], viewer.layers["masks"]
    model = train_on_layers("joint", [noisy], labels=[masks], steps=2, unet=tiny_unet)
    assert model.denoiser is not None and model.segmenter is not None

    instances = add(viewer, segmented_layer(model, noisy, instances=True))
    assert instances.__class__.__name__ == "Labels" and instances.name == "noisy instances"
    assert instances.data.shape == noisy.data.shape
    assert np.issubdtype(instances.data.dtype, np.integer)
    mask = add(viewer, segmented_layer(model, noisy))
    assert set(np.unique(mask.data)) <= {0, 1}
    np.testing.assert_allclose(mask.scale, noisy.scale)
    probabilities = add(viewer, segmented_layer(model, noisy, probabilities=True))
    assert probabilities.__class__.__name__ == "Image"
    assert 0.0 <= probabilities.data.min() and probabilities.data.max() <= 1.0


def test_segmenter_trains_on_an_image_and_labels_layer(viewer, tiny_unet):
    model = train_on_layers(
        "seg", [viewer.layers["noisy"]], labels=[viewer.layers["masks"]], steps=2, unet=tiny_unet
    )
    assert model.kind == "seg" and model.denoiser is None


def test_channel_layers_keep_their_placement_less_the_channel_axis(tiny_unet):
    rng = np.random.default_rng(0)
    viewer = ViewerModel()
    image = viewer.add_image(
        rng.normal(100, 10, (2, 32, 32)).astype(np.float32), name="two", scale=(1, 2, 2)
    )
    labels = viewer.add_labels((rng.random((32, 32)) > 0.5).astype(np.uint8), name="lab")
    model = train_on_layers("seg", [image], labels=[labels], steps=1, axes="CYX", unet=tiny_unet)
    mask = add(viewer, segmented_layer(model, image, axes="CYX"))
    assert mask.data.shape == (32, 32)
    np.testing.assert_allclose(mask.scale, (2, 2))


def test_layer_axes_defaults_and_rgb():
    viewer = ViewerModel()
    gray = viewer.add_image(np.zeros((4, 16, 16), np.float32))
    rgb = viewer.add_image(np.zeros((16, 16, 3), np.uint8), rgb=True)
    assert layer_axes(gray) == "SYX" and layer_axes(gray, volume=True) == "ZYX"
    assert layer_axes(gray, " cyx ") == "CYX"
    assert layer_axes(rgb) == "YXC"


@pytest.mark.parametrize(
    "case, message",
    [
        ("no labels", "choose a labels layer"),
        ("wrong labels", "labels layer 'small' has shape (2, 8, 8)"),
        ("5-D", "type its axes"),
        ("no image", "choose an image layer"),
    ],
)
def test_bad_layers_give_one_line_errors(viewer, tiny_unet, case, message):
    noisy = viewer.layers["noisy"]
    small = viewer.add_labels(np.zeros((2, 8, 8), np.uint8), name="small")
    five = viewer.add_image(np.zeros((1, 1, 2, 16, 16), np.float32), name="five")
    calls = {
        "no labels": lambda: train_on_layers("joint", [noisy], steps=1, unet=tiny_unet),
        "wrong labels": lambda: train_on_layers("seg", [noisy], labels=[small], steps=1),
        "5-D": lambda: train_on_layers("n2v", [five], steps=1),
        "no image": lambda: train_on_layers("n2v", [], steps=1),
    }
    with pytest.raises(sd.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        calls[case]()


def test_sample_data_is_a_noisy_stack_with_matching_labels():
    (clean, _, _), (noisy, kwargs, kind), (labels, _, label_kind) = noisy_somata()
    assert kind == "image" and label_kind == "labels" and kwargs["name"] == "somata noisy"
    assert noisy.shape == clean.shape == labels.shape
    assert not np.allclose(noisy, clean)


def test_manifest_declares_the_widget_and_sample():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("semdenoise")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Denoise and segment"]
    assert manifest.contributions.sample_data[0].key == "somata"
    for command in manifest.contributions.commands:  # every command's callable exists
        module, _, name = command.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[name]), name)
