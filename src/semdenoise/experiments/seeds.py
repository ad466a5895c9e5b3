"""One experiment over several training seeds: means, 95 % intervals over seeds, and
whether a method beats another seed by seed.

A bootstrap over test images says how much a score moves with the images drawn; it
says nothing about how much it moves when the same method is trained again. Two
trainings of one N2V can differ by more than N2V differs from joint, so the full
``reproduce`` variants train every model with several seeds, write each run's own
report into ``seed_<s>/``, and summarise here: per method and score the mean over seeds
with a Student-t 95 % interval (seeds are few, so not a bootstrap), the value of each
seed, and, for the method an experiment is about, its paired difference from every
other method (same seed, same data) with its interval and how many seeds it won.
Downstream scores (IoU, F1, ...) are pooled only over seeds whose fixed segmenter
could rank (see :func:`semdenoise.evaluation.report.ruler_can_rank`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from semdenoise.evaluation.evaluate import CLEAN
from semdenoise.evaluation.intervals import HIGHER_IS_BETTER, LEVEL, with_interval
from semdenoise.report import markdown_table, write_report

logger = logging.getLogger(__name__)

QUALITY_SCORES = ("PSNR", "SSIM")
DOWNSTREAM_SCORES = ("IoU", "Dice", "F1", "AP", "SEG", "own IoU", "own F1", "own AP", "own SEG")
SEED_SCORES = QUALITY_SCORES + DOWNSTREAM_SCORES


@dataclass(frozen=True)
class SeedRun:
    """What one seed's run contributes: its summary rows and whether its ruler could rank."""

    seed: int
    rows: list[dict[str, Any]]
    downstream_ranked: bool = True
    wall_seconds: float = 0.0


def seed_interval(values: Sequence[float]) -> list[float] | None:
    """Student-t 95 % interval of the mean of ``values``; None for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    half = student_t.ppf(0.5 + LEVEL / 2, len(values) - 1) * values.std(ddof=1)
    half /= math.sqrt(len(values))
    mean = float(values.mean())
    return [mean - float(half), mean + float(half)]


def _key(row: dict[str, Any], group: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(g) for g in group)


def _values(
    runs: Sequence[SeedRun], key: tuple[Any, ...], score: str, group: Sequence[str]
) -> list[float]:
    """The score of one row (``key``) in each run that has it and may report it."""
    values = []
    for run in runs:
        if score in DOWNSTREAM_SCORES and not run.downstream_ranked:
            continue
        row = next((r for r in run.rows if _key(r, group) == key), None)
        if row is not None and isinstance(row.get(score), float):
            values.append(row[score])
    return values


def over_seeds(runs: Sequence[SeedRun], group: Sequence[str] = ("method",)) -> list[dict[str, Any]]:
    """One row per method (per ``group`` key, in the first run's order): each score's mean
    over seeds, ``"<score> CI"`` over seeds, and ``"<score> per seed"``."""
    keys = list(dict.fromkeys(_key(r, group) for run in runs for r in run.rows))
    rows = []
    for key in keys:
        row: dict[str, Any] = dict(zip(group, key, strict=True))
        for score in SEED_SCORES:
            values = _values(runs, key, score, group)
            if not values:
                continue
            row[score] = float(np.mean(values))
            row[f"{score} CI"] = seed_interval(values)
            row[f"{score} per seed"] = values
        row["seeds"] = len(runs)
        rows.append(row)
    return rows


def paired_over_seeds(
    runs: Sequence[SeedRun],
    reference: str,
    group: Sequence[str] = ("method",),
    *,
    exclude: Sequence[str] = (CLEAN,),
) -> list[dict[str, Any]]:
    """``reference`` minus every other method, seed by seed (same seed, same data):
    mean difference, its 95 % interval over seeds, seeds won, and whether the interval
    excludes zero. Rows ``{..group.., "score", "versus", "difference", "interval",
    "won", "real"}``; for PSNR and the rest, higher is better."""
    context = [g for g in group if g != "method"]
    result = []
    first_rows = runs[0].rows if runs else []
    contexts = list(dict.fromkeys(tuple(r.get(g) for g in context) for r in first_rows))
    for ctx in contexts:
        labels = dict(zip(context, ctx, strict=True))
        others = [
            r["method"]
            for r in first_rows
            if tuple(r.get(g) for g in context) == ctx and r["method"] not in (reference, *exclude)
        ]
        for score in SEED_SCORES:
            for other in others:
                differences = []
                for run in runs:
                    if score in DOWNSTREAM_SCORES and not run.downstream_ranked:
                        continue
                    mine = _values([run], (*ctx, reference), score, (*context, "method"))
                    theirs = _values([run], (*ctx, other), score, (*context, "method"))
                    if mine and theirs:
                        differences.append(mine[0] - theirs[0])
                if not differences:
                    continue
                interval = seed_interval(differences)
                result.append(
                    {
                        **labels,
                        "score": score,
                        "versus": other,
                        "difference": float(np.mean(differences)),
                        "interval": interval,
                        "won": f"{sum(d > 0 for d in differences)}/{len(differences)}",
                        "real": interval is not None and (interval[0] > 0 or interval[1] < 0),
                    }
                )
    return result


def finished_seed(folder: Path, settings: Any) -> SeedRun | None:
    """The run of one seed already in ``folder``: its report.json was written from the
    same settings (a dataclass with a ``seed``) and its timing.json, written last, is
    there. So an interrupted multi-seed run resumes, and seeds run as separate processes
    (``--seed S --seeds 1 --out OUT/seed_S``) join the report over seeds."""
    report, timing = folder / "report.json", folder / "timing.json"
    if not (report.is_file() and timing.is_file()):
        return None
    written = json.loads(report.read_text())
    if written.get("settings") != json.loads(json.dumps(asdict(settings))):
        return None
    wall = json.loads(timing.read_text())["wall_seconds"]
    ranked = written.get("downstream_ranked", True)
    return SeedRun(settings.seed, written["rows"], ranked, wall)


def run_seeds(
    run_one: Callable[[Path, int], SeedRun], out: str | Path, seeds: Sequence[int]
) -> list[SeedRun]:
    """Run ``run_one(folder, seed)`` for each seed into ``out/seed_<s>/``."""
    out = Path(out)
    runs = []
    for seed in seeds:
        logger.info("seed %d of %s", seed, list(seeds))
        runs.append(run_one(out / f"seed_{seed}", seed))
    return runs


def run_and_report(
    run_one: Callable[[Path, int], SeedRun],
    out: str | Path,
    seeds: Sequence[int],
    report: Callable[[list[SeedRun]], dict[str, Any]],
    *,
    settings: Any = None,
) -> dict[str, Any]:
    """One seed: its run writes straight into ``out``. Several: each into
    ``out/seed_<s>/`` and ``report(runs)`` writes the report over seeds into ``out``.
    Given ``settings`` (a dataclass with a ``seed``), a seed whose folder holds its
    finished run with them is read back, not run again (:func:`finished_seed`).
    Returns the summary rows (``"rows"``) and the total wall time."""
    fresh = run_one

    def run_one(folder: Path, seed: int) -> SeedRun:
        finished = None if settings is None else finished_seed(folder, replace(settings, seed=seed))
        if finished is not None:
            logger.info("seed %d: %s holds its finished run; not trained again", seed, folder)
            return finished
        return fresh(folder, seed)

    if len(seeds) == 1:
        run = run_one(Path(out), seeds[0])
        return {"rows": run.rows, "wall_seconds": run.wall_seconds}
    runs = run_seeds(run_one, out, seeds)
    return {**report(runs), "wall_seconds": sum(r.wall_seconds for r in runs)}


def _displayed(row: dict[str, Any], scores: Sequence[str]) -> dict[str, Any]:
    shown = {
        k: v for k, v in row.items() if k not in SEED_SCORES and not k.endswith(("CI", "seed"))
    }
    for score in scores:
        if score in row:
            shown[score] = with_interval(row[score], row.get(f"{score} CI"))
    return shown


def write_seed_report(
    out: str | Path,
    runs: Sequence[SeedRun],
    *,
    title: str,
    intro: str,
    reference: str,
    group: Sequence[str] = ("method",),
    scores: Sequence[str] = HIGHER_IS_BETTER,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """report.md / report.json over seeds beside the per-seed reports; returns the rows."""
    out = Path(out)
    rows = over_seeds(runs, group)
    pairs = paired_over_seeds(runs, reference, group)
    ranked = [run.seed for run in runs if run.downstream_ranked]
    shown = [s for s in scores if any(s in r for r in rows)]
    ruler_line = (
        f"Downstream scores (IoU, F1) pool the {len(ranked)} of {len(runs)} seeds whose fixed "
        "segmenter could rank (clean F1 at least 0.7)."
        if len(ranked) < len(runs)
        else "Every seed's fixed segmenter could rank (clean F1 at least 0.7)."
    )
    per_seed_rows = [
        {
            **{g: r[g] for g in group},
            **{s: ", ".join(f"{v:.3f}" for v in r[f"{s} per seed"]) for s in shown if s in r},
        }
        for r in rows
    ]
    real = [p for p in pairs if p["real"]]
    pair_rows = [
        {
            **{g: p[g] for g in group if g != "method"},
            "score": p["score"],
            f"{reference} minus": p["versus"],
            "difference": with_interval(p["difference"], p["interval"]),
            "seeds won": p["won"],
            "real": "yes" if p["real"] else "no",
        }
        for p in pairs
        if p["score"] in shown
    ]
    write_report(
        out,
        title=title,
        sections={
            "Summary over seeds": intro
            + f"\n\nSeeds {', '.join(str(r.seed) for r in runs)}: mean over seeds; in brackets "
            "the 95 % interval over seeds (Student t). "
            + ruler_line
            + "\n\n"
            + markdown_table([_displayed(r, shown) for r in rows], [*group, *shown]),
            f"{reference} against each method, seed by seed": (
                f"Paired by seed (same data, same seed): {reference}'s score minus the other's; "
                "'real' when the 95 % interval over seeds excludes zero. "
                f"{len(real)} of {len(pair_rows)} differences are real.\n\n"
                + markdown_table(pair_rows)
            ),
            "Each seed's value": markdown_table(per_seed_rows),
            "Per seed": "\n".join(f"- [seed {r.seed}](seed_{r.seed}/report.md)" for r in runs),
        },
        data={
            "seeds": [r.seed for r in runs],
            "downstream_ranked_seeds": ranked,
            "rows": rows,
            "paired": pairs,
            **(data or {}),
        },
    )
    timing = {"wall_seconds": {str(r.seed): round(r.wall_seconds, 1) for r in runs}}
    (out / "timing.json").write_text(json.dumps(timing, indent=2))
    return {"rows": rows, "paired": pairs}
