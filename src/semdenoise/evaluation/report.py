"""An evaluation as report.md (Tab. 2–3-like summary, per-image rows), report.json and
figures (Fig. 5/9-like comparison panel, Fig. 8-like bar charts).

Every score is printed with its 95 % interval, and the report says which differences
from the best method are larger than their (paired) intervals. A downstream ranking
is printed only when the fixed segmenter reads clean images well enough to rank
(clean F1, or IoU without objects, of at least ``MIN_CLEAN_F1``). ``report.json``
holds only what the same seed reproduces exactly; timings, which follow the machine's
load, go to ``timing.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from semdenoise.evaluation.evaluate import CLEAN, NOISY, Evaluation
from semdenoise.evaluation.intervals import HIGHER_IS_BETTER, separable_from_best, with_interval
from semdenoise.evaluation.no_reference import BLIND_SPOT
from semdenoise.evaluation.ruler import MIN_CLEAN_F1
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
    "AP",
    "SEG",
    "matched IoU",
    "objects",
    "own IoU",
    "own F1",
    "own AP",
    "own SEG",
)
PER_IMAGE_COLUMNS = ("method", "image", *HIGHER_IS_BETTER)
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
    timing: dict[str, Any] | None = None,
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
    noisy = evaluation.outputs[NOISY][figure_image]
    residuals = {
        name: noisy - stack[figure_image]
        for name, stack in evaluation.outputs.items()
        if name not in (CLEAN, NOISY)
    }
    save_comparison(
        out / "comparison.png",
        image,
        masks=masks or None,
        captions=captions,
        truth=truth,
        residuals=residuals,
    )
    figures.append(
        "![each method's output; below, the fixed segmenter's mask (white: correct, red: "
        "false, cyan: missed); last row, the residual input − output (red positive, blue "
        "negative): structure in it is signal the method removed](comparison.png)"
    )
    bar_rows = [r for r in summary if r["method"] != CLEAN]
    save_bars(out / "bars.png", bar_rows, BAR_METRICS, highlight=highlight)
    figures.append("![PSNR, SSIM, IoU and F1 per method](bars.png)")
    ranking, can_rank = ranking_section(evaluation)
    body = {
        "Summary": (intro + "\n\n" if intro else "")
        + markdown_table([displayed(row) for row in summary], _columns(summary, SUMMARY_COLUMNS))
        + "\n\nIn brackets: 95 % bootstrap interval over the test images.",
        "Which differences are real": ranking,
        "Without clean images": no_reference_section(evaluation, can_rank),
        **(sections or {}),
        "Figures": "\n\n".join(figures),
        "Per image": markdown_table(
            evaluation.per_image, _columns(evaluation.per_image, PER_IMAGE_COLUMNS)
        ),
    }
    timing = {"seconds per megapixel": evaluation.seconds_per_megapixel, **(timing or {})}
    body["Timing (depends on the machine and its load)"] = (
        markdown_table(
            [{"method": m, "s/MP": s} for m, s in evaluation.seconds_per_megapixel.items()]
        )
        if evaluation.seconds_per_megapixel
        else "No method was timed."
    )
    write_report(
        out,
        title=title,
        sections=body,
        data={
            "summary": summary,
            "per_image": evaluation.per_image,
            "data_range": evaluation.data_range,
            "method_details": evaluation.details,
            "downstream_ranked": can_rank,
            "no_reference": evaluation.no_reference,
            "no_reference_agreement": agreement(evaluation, can_rank),
            **(data or {}),
        },
    )
    (out / "timing.json").write_text(json.dumps(timing, indent=2, default=float))
    return out / "report.md"


NO_REFERENCE_SHOWN = (
    "method",
    BLIND_SPOT,
    "residual mean",
    "residual mean / input std",
    "residual autocorr",
    "residual-output corr",
)


def agreement(evaluation: Evaluation, can_rank: bool) -> list[dict[str, Any]]:
    """Does the blind-spot loss (no clean image) order the methods as a clean-image score
    does? Per score: Spearman's rho over the methods, and the pairs it orders the other way."""
    loss = {r["method"]: r[BLIND_SPOT] for r in evaluation.no_reference}
    result = []
    for score in ["PSNR", "SSIM"] + (["IoU", "F1"] if can_rank else []):
        truth = {
            r["method"]: r[score]
            for r in evaluation.summary
            if r["method"] in loss and isinstance(r.get(score), float)
        }
        names = sorted(truth)
        if len(names) < 3:
            continue
        rho = spearmanr([truth[n] for n in names], [-loss[n] for n in names]).statistic
        flipped = [
            f"{a} vs {b}"
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if (truth[a] - truth[b]) * (loss[b] - loss[a]) < 0
        ]
        result.append({"score": score, "spearman": float(rho), "ordered the other way": flipped})
    return result


def no_reference_section(evaluation: Evaluation, can_rank: bool) -> str:
    """The checks a user without clean images can run, and whether they rank as the
    clean-image scores do on this data."""
    if not evaluation.no_reference:
        return "Not computed."
    lines = [
        "What `semdenoise check` reports on a user's own data, here beside the clean-image "
        "scores. Blind-spot loss: squared error on pixels each method was not shown (one "
        "pixel per grid cell, replaced by a neighbour; lower is better, the input as is is "
        "the bar). Residual (input − output): for pixel-independent noise its mean, lag-1 "
        "autocorrelation and correlation with the output are near 0; positive values mean "
        "structure was removed with the noise.",
        "",
        markdown_table(
            evaluation.no_reference, _columns(evaluation.no_reference, NO_REFERENCE_SHOWN)
        ),
        "",
    ]
    for row in agreement(evaluation, can_rank):
        flipped = row["ordered the other way"]
        lines.append(
            f"- Blind-spot loss against **{row['score']}**: Spearman rho "
            f"{row['spearman']:.2f}; "
            + (f"ordered the other way: {', '.join(flipped)}." if flipped else "same order.")
        )
    return "\n".join(lines)


def displayed(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row for the table: each score with its interval in brackets."""
    return {
        key: with_interval(value, row.get(f"{key} CI")) if f"{key} CI" in row else value
        for key, value in row.items()
        if not key.endswith(" CI")
    }


def ruler_can_rank(evaluation: Evaluation) -> tuple[bool, str]:
    """Whether the fixed segmenter reads the clean images well enough to rank methods."""
    clean = next((r for r in evaluation.summary if r["method"] == CLEAN), None)
    if clean is None or "IoU" not in clean:
        return True, ""
    score = "F1" if "F1" in clean else "IoU"
    value = clean[score]
    if value >= MIN_CLEAN_F1:
        return True, f"The fixed segmenter scores {score} {value:.3f} on the clean images."
    return False, (
        f"**No downstream ranking**: the fixed segmenter scores only {score} {value:.3f} on "
        f"the clean images (below {MIN_CLEAN_F1}), too weak a ruler to tell methods apart; "
        "its IoU/F1/AP/SEG columns are printed for the record, not as a ranking."
    )


def ranking_section(evaluation: Evaluation) -> tuple[str, bool]:
    """For each score, the best method and which others are worse by more than their
    paired interval; downstream scores only when the ruler can rank."""
    can_rank, ruler_note = ruler_can_rank(evaluation)
    downstream = [s for s in HIGHER_IS_BETTER if s not in ("PSNR", "SSIM")]
    scores = ["PSNR", "SSIM"] + (downstream if can_rank else [])
    rows = separable_from_best(
        evaluation.summary, evaluation.per_image, scores=scores, exclude=(CLEAN,)
    )
    lines = [ruler_note] if ruler_note else []
    for score in scores:
        of_score = [r for r in rows if r["score"] == score]
        if not of_score:
            continue
        best = of_score[0]["best"]
        real = [r["method"] for r in of_score if r["real"]]
        tied = [r["method"] for r in of_score if not r["real"]]
        text = f"- **{score}**: best {best}"
        if tied:
            text += f"; not separable from it: {', '.join(tied)}"
        if real:
            text += f"; worse by more than the interval: {', '.join(real)}"
        lines.append(text + ".")
    lines.append(
        "Paired bootstrap over the test images (the same resampled images for both methods); "
        f"the raw input is row '{NOISY}'."
    )
    return "\n".join(lines), can_rank
