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


def _pyplot():
    """matplotlib with a file-only backend: figures are written, never shown."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_comparison(
    path: str | Path,
    images: dict[str, np.ndarray],
    *,
    masks: dict[str, np.ndarray] | None = None,
    captions: dict[str, str] | None = None,
    truth: np.ndarray | None = None,
    residuals: dict[str, np.ndarray] | None = None,
) -> None:
    """Like the paper's Fig. 5/9: one column per method (same intensity range), and
    under each the segmentation of its output with ``captions`` (e.g. its IoU); true
    positives white, false positives red, missed target cyan when ``truth`` is given.
    ``residuals`` (input minus output) add a last row on one symmetric colour scale:
    a good denoiser's residual looks like noise; edges or blobs in it are signal it
    removed."""
    plt = _pyplot()
    names = list(images)
    rows = 1 + bool(masks) + bool(residuals)
    low, high = np.percentile(np.concatenate([np.ravel(images[n]) for n in names]), [0.5, 99.5])
    figure, axes = plt.subplots(
        rows, len(names), figsize=(2.4 * len(names), 2.6 * rows), squeeze=False
    )
    if residuals:
        spread = float(
            np.percentile(np.abs(np.concatenate([np.ravel(r) for r in residuals.values()])), 99)
        )
    for column, name in enumerate(names):
        axes[0, column].imshow(images[name], cmap="gray", vmin=low, vmax=high)
        axes[0, column].set_title(name, fontsize=9)
        if masks:
            mask = masks.get(name)
            if mask is not None:
                axes[1, column].imshow(_overlay(mask, truth))
                axes[1, column].set_title((captions or {}).get(name, ""), fontsize=8)
        if residuals and name in residuals:
            axes[-1, column].imshow(residuals[name], cmap="RdBu_r", vmin=-spread, vmax=spread)
            axes[-1, column].set_title("input − output", fontsize=8)
    for axis in axes.ravel():
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _overlay(mask: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    predicted = mask != 0
    rgb = np.zeros((*mask.shape, 3), np.float32)
    if truth is None:
        rgb[predicted] = 1.0
        return rgb
    target = truth != 0
    rgb[predicted & target] = (1.0, 1.0, 1.0)
    rgb[predicted & ~target] = (0.9, 0.15, 0.15)
    rgb[~predicted & target] = (0.1, 0.7, 0.8)
    return rgb


def save_bars(
    path: str | Path, rows: Sequence[dict], metrics: Sequence[str], *, highlight: str | None = None
) -> None:
    """Like the paper's Fig. 8: one bar chart per metric, one bar per method."""
    plt = _pyplot()
    metrics = [m for m in metrics if any(m in r for r in rows)]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        shown = [r for r in rows if metric in r]
        names = [r["method"] for r in shown]
        values = [float(r[metric]) for r in shown]
        colors = ["tab:orange" if n == highlight else "tab:blue" for n in names]
        axis.bar(range(len(names)), values, color=colors)
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axis.set_title(metric, fontsize=10)
        if metric in ("PSNR",):
            axis.set_ylim(min(values) - 1.0, max(values) + 0.5)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def save_curves(
    path: str | Path,
    curves: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_x: bool = False,
) -> None:
    """Lines (x, mean, optional spread shown as a band), like the paper's Fig. 6–7."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.0, 3.4))
    for label, (x, y, spread) in curves.items():
        x, y = np.asarray(x, float), np.asarray(y, float)
        axis.plot(x, y, marker="o" if len(x) < 20 else None, label=label)
        if spread is not None:
            spread = np.asarray(spread, float)
            axis.fill_between(x, y - spread, y + spread, alpha=0.25)
    if log_x:
        axis.set_xscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
