"""The napari widget in a real viewer (Qt + OpenGL; under Xvfb, which pytest-xvfb starts).

Without a display these tests skip, unless SEMDENOISE_REQUIRE_VIEWER is set (CI sets it,
after installing Xvfb), where a missing display fails them instead.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import semdenoise as sd

TIMEOUT_MS = 120_000

# Decided at collection, before any fixture makes a QApplication (which aborts the whole
# process without a display); pytest-xvfb has set DISPLAY by then if Xvfb is installed.
if not os.environ.get("DISPLAY") and os.environ.get("SEMDENOISE_REQUIRE_VIEWER"):
    pytest.fail("SEMDENOISE_REQUIRE_VIEWER is set but there is no display (Xvfb?)", pytrace=False)
pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="no display: install Xvfb (pytest-xvfb starts it)"
)


@pytest.fixture
def viewer(make_napari_viewer, noisy_stack):
    clean, noisy = noisy_stack
    viewer = make_napari_viewer()
    viewer.add_image(noisy, name="noisy")
    viewer.add_labels((clean > 60).astype(np.uint8), name="masks")
    return viewer


@pytest.fixture
def widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("semdenoise", "Denoise and segment")
    return widget


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)


def test_widget_trains_from_the_viewer_and_adds_a_denoised_layer(qtbot, viewer, widget):
    assert widget.train_image.value is viewer.layers["noisy"]
    assert not widget.denoise_button.enabled  # no model yet
    widget.steps.value = 4
    widget.train_button.clicked.emit()
    assert widget.busy  # in a worker thread: the call returns at once
    wait_idle(qtbot, widget)
    assert widget.model is not None and widget.model.kind == "n2v", widget.status.value
    assert widget.progress.value == 4
    assert "Noise2Void" in widget.model_info.value

    widget.apply_image.value = viewer.layers["noisy"]
    widget.denoise_button.clicked.emit()
    wait_idle(qtbot, widget)
    denoised = viewer.layers["noisy denoised"]
    assert denoised.data.shape == viewer.layers["noisy"].data.shape
    assert np.isfinite(denoised.data).all()
    # the new layer is offered for the next step
    assert any(choice is denoised for choice in widget.apply_image.choices)


def test_widget_trains_a_joint_model_and_segments_instances(qtbot, viewer, widget):
    widget.mode.value = "joint"
    assert widget.train_labels.enabled
    widget.train_labels.value = viewer.layers["masks"]
    widget.steps.value = 2
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert widget.model is not None and widget.model.kind == "joint", widget.status.value
    widget.instances.value = True
    widget.segment_button.clicked.emit()
    wait_idle(qtbot, widget)
    labels = viewer.layers["noisy instances"]
    assert labels.__class__.__name__ == "Labels"
    assert labels.data.shape == viewer.layers["noisy"].data.shape


def test_stop_ends_training_and_keeps_the_model(qtbot, viewer, widget):
    widget.steps.value = 100_000
    widget.train_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.progress.value >= 1, timeout=TIMEOUT_MS)
    assert widget.stop_button.enabled
    widget.stop_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert widget.model is not None
    assert widget.model.training["steps"] < 100_000


def test_model_file_saves_loads_and_refuses_a_foreign_file(qtbot, viewer, widget, tmp_path):
    widget.steps.value = 2
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    widget.save_file.value = tmp_path / "from_napari"
    widget.save_button.clicked.emit()
    saved = tmp_path / "from_napari.pt"
    assert sd.load_model(saved).kind == "n2v"

    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a model")
    widget.model_file.value = foreign
    widget.load_button.clicked.emit()
    assert widget.status.value.startswith("error: ") and "foreign.pt" in widget.status.value
    assert "\n" not in widget.status.value

    widget.model = None
    widget.model_file.value = saved
    widget.load_button.clicked.emit()
    assert widget.model is not None and "from_napari.pt" in widget.model_info.value
    assert widget.denoise_button.enabled


def test_an_error_in_the_worker_is_one_line_in_the_widget(qtbot, viewer, widget):
    widget.mode.value = "seg"
    widget.train_labels.value = None
    widget.steps.value = 1
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert widget.model is None
    assert widget.status.value == "error: seg: choose a labels layer for the image"
