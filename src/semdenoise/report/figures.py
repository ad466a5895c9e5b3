"""PNG figures without a plotting dependency: labelled image panels side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (np.clip(image, low, high) - low) / max(high - low, 1e-12)
    return (255 * scaled).astype(np.uint8)


def save_panel(
    path: str | Path,
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    display_range: tuple[float, float] | None = None,
) -> None:
    """Save images in one row, each titled, all shown with the same intensity range."""
    if display_range is None:
        stacked = np.concatenate([np.ravel(i) for i in images])
        display_range = tuple(np.percentile(stacked, [0.5, 99.5]))
    gap, header = 6, 18
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    canvas = Image.new("L", (width, height + header), color=255)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for image, title in zip(images, titles, strict=True):
        canvas.paste(Image.fromarray(_to_uint8(image, *display_range)), (x, header))
        draw.text((x + 2, 3), title, fill=0)
        x += image.shape[1] + gap
    canvas.save(path)
