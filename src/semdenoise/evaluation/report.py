"""An evaluation as report.md (Tab. 2–3-like summary, per-image rows), report.json and
figures (Fig. 5/9-like comparison panel, Fig. 8-like bar charts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semdenoise.evaluation.evaluate import CLEAN, Evaluation
from semdenoise.report import markdown_table, save_bars, save_comparison, write_report

SUMMARY_COLUMNS = (
    "method",
    "PSNR",
    "SSIM",
    "IoU",
    "Dice",
    "precision",
    "recall",
    "F1",
    "matched IoU",
    "objects",
    "own IoU",
    "own F1",
    "s/MP",
)
PER_IMAGE_COLUMNS = ("method", "image", "PSNR", "SSIM", "IoU", "F1", "own IoU", "own F1")
BAR_METRICS = ("PSNR", "SSIM", "IoU", "F1")


def _columns(rows: list[dict[str, Any]], wanted: tuple[str, ...]) -> list[str]:
    return [c for c in wanted if any(c in r for r in rows)]


def write_evaluation(
    evaluation: Evaluation,
    out: str | Path,
    *,
    title: str,
    intro: str = "",
    sections: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    figure_image: int = 0,
    highlight: str | None = None,
) -> Path:
    """Write the report into ``out``; returns the path of report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = evaluation.summary
    figures = []
    image = {name: stack[figure_image] for name, stack in evaluation.outputs.items()}
    masks = {name: stack[figure_image] for name, stack in evaluation.segmentations.items()}
    truth = None
    captions: dict[str, str] = {}
    for row in evaluation.per_image:
        if row["image"] == figure_image and "IoU" in row:
            captions[row["method"]] = f"IoU {row['IoU']:.3f}  F1 {row['F1']:.2f}"
    for name, stack in evaluation.own_segmentations.items():
        key = f"{name} (own seg.)"
        masks[key] = stack[figure_image]
        image[key] = image[name]
        own = next(
            r for r in evaluation.per_image if r["method"] == name and r["image"] == figure_image
        )
        captions[key] = f"IoU {own['own IoU']:.3f}  F1 {own['own F1']:.2f}"
    if evaluation.labels is not None:
        truth = evaluation.labels[figure_image]
    save_comparison(
        out / "comparison.png", image, masks=masks or None, captions=captions, truth=truth
    )
    figures.append(
        "![each method's output; below, the fixed segmenter's mask (white: correct, red: "
        "false, cyan: missed)](comparison.png)"
    )
    bar_rows = [r for r in summary if r["method"] != CLEAN]
    save_bars(out / "bars.png", bar_rows, BAR_METRICS, highlight=highlight)
    figures.append("![PSNR, SSIM, IoU and F1 per method](bars.png)")
    body = {
        "Summary": (intro + "\n\n" if intro else "")
        + markdown_table(summary, _columns(summary, SUMMARY_COLUMNS)),
        **(sections or {}),
        "Figures": "\n\n".join(figures),
        "Per image": markdown_table(
            evaluation.per_image, _columns(evaluation.per_image, PER_IMAGE_COLUMNS)
        ),
    }
    write_report(
        out,
        title=title,
        sections=body,
        data={
            "summary": summary,
            "per_image": evaluation.per_image,
            "data_range": evaluation.data_range,
            "method_details": evaluation.details,
            **(data or {}),
        },
    )
    return out / "report.md"
