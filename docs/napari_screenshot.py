"""The napari widget at work on a real image: docs/napari_widget.png.

Opens a real viewer, loads raw confocal captures of FMD field 1 (../shared/data, real
camera noise), trains a denoiser from the widget for a fixed number of steps, denoises
the first capture, and saves a screenshot of the window. Needs a display:

    xvfb-run -a .venv/bin/python docs/napari_screenshot.py --steps 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import tifffile
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "fmd_confocal_bpae_b"


def wait(widget) -> None:
    while widget.busy:
        QApplication.processEvents()
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "napari_widget.png")
    args = parser.parse_args()

    raw = tifffile.imread(DATA / "fov01_raw.tif")  # (3, 512, 512) uint8 captures
    viewer = napari.Viewer(title="semdenoise in napari")
    viewer.window.resize(1500, 900)
    viewer.add_image(raw, name="FMD raw", colormap="gray")
    _, widget = viewer.window.add_plugin_dock_widget("semdenoise", "Denoise and segment")
    widget.steps.value = args.steps
    widget.train_button.clicked.emit()
    wait(widget)
    if widget.model is None:
        raise SystemExit(f"training failed: {widget.status.value}")
    widget.denoise_button.clicked.emit()
    wait(widget)
    denoised = viewer.layers["FMD raw denoised"]
    denoised.contrast_limits = viewer.layers["FMD raw"].contrast_limits
    viewer.grid.enabled = True
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out} ({widget.status.value}; {widget.model_info.value})")
    viewer.close()


if __name__ == "__main__":
    main()
