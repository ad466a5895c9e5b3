"""The napari dock widget: train, load and save a model, denoise and segment layers.

One widget holds one model at a time (trained here or loaded from a file), so training
and applying share it without a hand-off. Training and prediction run in a worker
thread (napari's ``create_worker``): the viewer stays responsive, the progress bar
follows each optimiser step, and Stop ends training after the current step with a
complete model. The work itself is :mod:`semdenoise.napari_plugin.layers`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels, Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from semdenoise.config import DEFAULT_STEPS
from semdenoise.errors import SemdenoiseError
from semdenoise.napari_plugin.layers import (
    TRAIN_MODES,
    TrainingProgress,
    denoised_layer,
    describe_model,
    segmented_layer,
    train_on_layers,
)

if TYPE_CHECKING:
    import napari

    from semdenoise.models.trained import TrainedModel

logger = logging.getLogger(__name__)

NO_MODEL = "No model yet: train one below or load a model file."


class _StepSignal(QObject):
    """Carries a training step from the worker thread to the widget's (GUI) thread."""

    step = Signal(int, int, object)


class SemdenoiseWidget(Container):
    """Train a denoiser, segmenter or joint model on layers and apply it to layers."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.model: TrainedModel | None = None
        self._worker: Any = None
        self._progress: TrainingProgress | None = None
        self._signal = _StepSignal()
        self._signal.step.connect(self._show_step)

        self.model_file = FileEdit(label="Model file", mode="r", filter="*.pt")
        self.load_button = PushButton(text="Load model")
        self.model_info = Label(label="Model", value=NO_MODEL)
        self.save_file = FileEdit(label="Save as", mode="w", filter="*.pt")
        self.save_button = PushButton(text="Save model")

        self.mode = ComboBox(label="Train", choices=list(TRAIN_MODES.items()))
        self.train_image = ComboBox(label="Image", choices=self._image_layers)
        self.train_labels = ComboBox(label="Labels", choices=self._label_layers, nullable=True)
        self.steps = SpinBox(label="Steps", value=DEFAULT_STEPS, min=1, max=10_000_000)
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.axes = LineEdit(label="Axes", value="")
        self.axes.tooltip = (
            "The image layer's axes, for example CYX or SYX (S: a stack of training "
            "images). Blank: YX, a 3-D layer a stack SYX, RGB with its colours as channels."
        )
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.stop_button.tooltip = "End training after this step and keep the model."
        self.progress = ProgressBar(label="Progress", value=0, min=0, max=1)

        self.apply_image = ComboBox(label="Apply to", choices=self._image_layers)
        self.tta = CheckBox(text="Average 8 rotations/flips (8x slower)")
        self.denoise_button = PushButton(text="Denoise")
        self.instances = CheckBox(text="Separate touching objects (instances)")
        self.segment_button = PushButton(text="Segment")
        self.status = Label(label="Status", value="")

        self.extend(
            [
                self.model_file,
                self.load_button,
                self.model_info,
                self.save_file,
                self.save_button,
                self.mode,
                self.train_image,
                self.train_labels,
                self.steps,
                self.seed,
                self.axes,
                self.train_button,
                self.stop_button,
                self.progress,
                self.apply_image,
                self.tta,
                self.denoise_button,
                self.instances,
                self.segment_button,
                self.status,
            ]
        )
        self.load_button.changed.connect(self.load)
        self.save_button.changed.connect(self.save)
        self.train_button.changed.connect(self.train)
        self.stop_button.changed.connect(self.stop)
        self.denoise_button.changed.connect(self.denoise)
        self.segment_button.changed.connect(self.segment)
        self.mode.changed.connect(self._update_enabled)
        for event in ("inserted", "removed", "reordered"):
            getattr(viewer.layers.events, event).connect(self._refresh_layers)
        self._update_enabled()

    # ----- state -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether training or prediction is running."""
        return self._worker is not None

    def _image_layers(self, _widget=None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _label_layers(self, _widget=None) -> list[tuple[str, Labels]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _refresh_layers(self, _event=None) -> None:
        for combo in (self.train_image, self.train_labels, self.apply_image):
            combo.reset_choices()

    def _update_enabled(self, _value=None) -> None:
        idle = not self.busy
        has_model = self.model is not None
        self.train_labels.enabled = idle and self.mode.value != "n2v"
        for widget in (self.train_button, self.load_button, self.mode, self.steps, self.seed):
            widget.enabled = idle
        self.stop_button.enabled = self._progress is not None
        self.save_button.enabled = idle and has_model
        self.denoise_button.enabled = idle and has_model and self.model.denoiser is not None
        self.segment_button.enabled = idle and has_model and self.model.segmenter is not None

    def _set_model(self, model: TrainedModel, where: str) -> None:
        self.model = model
        self.model_info.value = f"{describe_model(model)} ({where})"

    def _say(self, message: str) -> None:
        self.status.value = message
        logger.info(message)

    # ----- model file --------------------------------------------------------------------

    def load(self, _value=None) -> None:
        """Load the model file chosen above (a one-line error if it is not one)."""
        from semdenoise.io.model_file import load_model

        path = Path(self.model_file.value)
        try:
            self._set_model(load_model(path), path.name)
        except SemdenoiseError as e:
            self._fail(e)
            return
        self._say(f"loaded {path.name}")
        self._update_enabled()

    def save(self, _value=None) -> None:
        """Write the current model to the file chosen above (atomically)."""
        from semdenoise.io.model_file import save_model

        if self.model is None:
            return
        path = Path(self.save_file.value)
        if path.suffix != ".pt":
            path = path.with_name(path.name + ".pt")
        try:
            save_model(self.model, path)
        except SemdenoiseError as e:
            self._fail(e)
            return
        self._say(f"saved {path}")
        show_info(f"semdenoise: model saved to {path}")

    # ----- work in a thread --------------------------------------------------------------

    def train(self, _value=None) -> None:
        """Train a new model of the chosen kind on the chosen layers, in a worker thread."""
        if self.busy:
            return
        image, labels = self.train_image.value, self.train_labels.value
        mode = self.mode.value
        self._progress = TrainingProgress(report=self._signal.step.emit)
        self.progress.max, self.progress.value = self.steps.value, 0
        self._run(
            train_on_layers,
            mode,
            [image] if image is not None else [],
            labels=[labels] if mode != "n2v" else [],
            steps=self.steps.value,
            seed=self.seed.value,
            axes=self.axes.value or None,
            progress=self._progress,
            done=self._trained,
            message=f"training on {getattr(image, 'name', '?')}",
        )

    def stop(self, _value=None) -> None:
        """End training after the current step; the model trained so far is kept."""
        if self._progress is not None:
            self._progress.stop()
            self._say("stopping after this step")

    def denoise(self, _value=None) -> None:
        """Denoise the chosen layer into a new image layer."""
        layer = self.apply_image.value
        if self.busy or self.model is None or layer is None:
            return
        self._run(
            denoised_layer,
            self.model,
            layer,
            axes=self.axes.value or None,
            tta=self.tta.value,
            done=self._add_layer,
            message=f"denoising {layer.name}",
        )

    def segment(self, _value=None) -> None:
        """Segment the chosen layer into a new Labels layer (a mask, or instances)."""
        layer = self.apply_image.value
        if self.busy or self.model is None or layer is None:
            return
        self._run(
            segmented_layer,
            self.model,
            layer,
            axes=self.axes.value or None,
            instances=self.instances.value,
            done=self._add_layer,
            message=f"segmenting {layer.name}",
        )

    def _run(self, function, *args, done, message: str, **kwargs) -> None:
        self._say(message)
        # errors are ours to show (_fail), not napari's generic traceback dialog
        worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        worker.returned.connect(done)
        worker.errored.connect(self._fail)
        worker.finished.connect(self._finished)
        self._worker = worker
        self._update_enabled()
        worker.start()

    def _show_step(self, step: int, total: int, loss: float | None) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = min(step, self.progress.max)
        if loss is not None:
            self.status.value = f"step {step} / {total}, loss {loss:.4g}"

    def _trained(self, model: TrainedModel) -> None:
        self._set_model(model, "trained here")
        self._say(f"trained: {describe_model(model)}")

    def _add_layer(self, layer_data) -> None:
        data, kwargs, layer_type = layer_data
        self.viewer.add_layer(Layer.create(data, kwargs, layer_type))
        self._refresh_layers()
        self._say(f"added layer {kwargs['name']!r}")

    def _fail(self, error: BaseException) -> None:
        if isinstance(error, SemdenoiseError):
            message = str(error)
        else:  # a bug: keep the traceback in the log
            logger.error("semdenoise failed", exc_info=error)
            message = f"{type(error).__name__}: {error}"
        self._say(f"error: {message}")
        show_error(f"semdenoise: {message}")

    def _finished(self) -> None:
        self._worker = None
        self._progress = None
        self._update_enabled()
