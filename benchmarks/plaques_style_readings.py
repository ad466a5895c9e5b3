"""Unsupervised joint mode (Eq. 4) on synthetic plaques: detached target vs gradient.

Everything goes through the command line a user would type, on images generated for
this run only (seeds unlike the ones `reproduce plaques` and the tests use):

1. ``semdenoise synth`` makes noisy somata (the related, labelled task), noisy training
   plaques and unseen test plaques;
2. ``semdenoise train seg --loss mse`` trains the style segmenter on the somata, and
   ``train seg`` a fixed evaluation segmenter on the *clean* training plaques;
3. per training seed, N2V alone and the two readings of Eq. 4 — the segmenter's output
   as a detached target (default) and ``--style-gradient`` (the gradient also flows
   through the frozen segmenter's output) — train on the noisy training plaques (their
   labels unused) for fixed numbers of optimiser steps: ``--steps`` N2V, ``--joint-steps``
   each reading, ``--seg-steps`` each segmenter (same seed and steps, same model,
   whatever the machine's load). The defaults are about what the earlier 3-minute models
   and 2-minute segmenters made on 2 CPU cores (the rates of the 5-minute
   ``reproduce plaques`` run on the same kind of images: 1513 N2V and 1116 joint steps,
   about 66 segmenter steps a minute);
4. ``semdenoise evaluate`` scores them on the test plaques: PSNR/SSIM against the clean
   images, and the fixed segmenter's IoU and object F1 on each output.

The table gives each seed (with the steps each model made) and the mean over seeds, and
for each reading the number of seeds in which it beats N2V of the same seed.

    python benchmarks/plaques_style_readings.py --steps 900 --joint-steps 670 --seg-steps 135 \
        --out benchmarks/results/plaques_style_readings.json
    python benchmarks/plaques_style_readings.py --quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from cli_runs import recorded_args, semdenoise
from cli_runs import train as cli_train
from semdenoise.report import markdown_table

PRESET = ["--depth", "3", "--base-channels", "16", "--learning-rate", "1e-3", "--no-progress"]
SCORES = ("PSNR", "SSIM", "IoU", "F1")
METHODS = {
    "n2v": ["train", "n2v"],
    "joint, detached target": ["train", "joint"],
    "joint, gradient": ["train", "joint", "--style-gradient"],
}


def steps_and_cap(steps: int, minutes: float | None) -> list:
    """``train`` flags for ``steps`` optimiser steps, and a wall-clock cap only if given."""
    return ["--steps", steps, *([] if minutes is None else ["--max-minutes", minutes])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/plaques_style_readings.json")
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=900,
        help="optimiser steps of N2V per seed (default: about what 3 minutes gave on 2 CPU cores)",
    )
    parser.add_argument(
        "--joint-steps",
        type=int,
        default=670,
        help="optimiser steps of each joint reading per seed (default: about what 3 "
        "minutes gave on 2 CPU cores, the CPU time of --steps of N2V)",
    )
    parser.add_argument(
        "--seg-steps",
        type=int,
        default=135,
        help="optimiser steps of each segmenter (default: about what 2 minutes gave)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="optional wall-clock cap per model and seed, on top of the steps (whichever "
        "comes first); a cap that stops a run makes results depend on the machine's load",
    )
    parser.add_argument(
        "--seg-minutes",
        type=float,
        default=None,
        help="optional wall-clock cap of each segmenter, on top of --seg-steps; a cap that "
        "stops a run makes results depend on the machine's load",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="toy budgets, one seed")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.joint_steps, args.seg_steps, args.seeds = 40, 30, 10, [0]
        args.n_train, args.n_test = 8, 4
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="plaques-readings-"))
    somata, train, test = work / "somata", work / "train", work / "test"
    semdenoise("synth", "somata", somata, "--n", args.n_train, "--seed", 7001)
    semdenoise("synth", "plaques", train, "--n", args.n_train, "--seed", 7002)
    semdenoise("synth", "plaques", test, "--n", args.n_test, "--seed", 7003)
    style, fixed = work / "style.pt", work / "fixed.pt"
    budget = [*steps_and_cap(args.seg_steps, args.seg_minutes), *PRESET]
    seg_steps = {
        "style": cli_train("seg", somata / "noisy.tif", "--labels", somata / "masks.tif",
                           "--loss", "mse", "--out", style, *budget),
        "fixed": cli_train("seg", train / "clean.tif", "--labels", train / "masks.tif",
                           "--out", fixed, *budget),
    }  # fmt: skip
    print(
        f"segmenters trained: style {seg_steps['style']} steps, fixed {seg_steps['fixed']} "
        f"steps ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    rows = []
    for seed in args.seeds:
        evaluated, made = [], {}
        for name, command in METHODS.items():
            model = work / f"{name.replace(', ', '-').replace(' ', '_')}-{seed}.pt"
            style_option = [] if name == "n2v" else ["--style-segmenter", style]
            steps = args.steps if name == "n2v" else args.joint_steps
            made[name] = cli_train(*command[1:], train / "noisy.tif", *style_option,
                                   "--out", model, *steps_and_cap(steps, args.minutes),
                                   "--seed", seed, *PRESET)  # fmt: skip
            evaluated += ["--method", f"{name}={model}"]
        report = work / f"evaluation-{seed}"
        semdenoise("evaluate", "--noisy", test / "noisy.tif", "--clean", test / "clean.tif",
                   "--labels", test / "masks.tif", "--instances", test / "instances.tif",
                   "--segmenter", fixed, *evaluated, "--out", report)  # fmt: skip
        summary = json.loads((report / "report.json").read_text())["summary"]
        for row in summary:
            if row["method"] in METHODS:
                rows.append({"seed": seed, **row, "train steps": made[row["method"]]})
            elif seed == args.seeds[0]:
                rows.append({"seed": None, **row})
        print(
            markdown_table(
                [r for r in rows if r["seed"] == seed], ["method", *SCORES, "train steps"]
            )
        )
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)

    means = []
    for name in METHODS:
        group = [r for r in rows if r["method"] == name]
        row = {"method": name, "seeds": len(group)}
        row |= {key: float(np.mean([r[key] for r in group])) for key in SCORES}
        if name != "n2v":
            base = {r["seed"]: r for r in rows if r["method"] == "n2v"}
            for key in ("IoU", "F1"):
                wins = sum(r[key] > base[r["seed"]][key] for r in group)
                row[f"{key} wins over n2v"] = f"{wins}/{len(group)}"
        means.append(row)
    print("\nper seed (clean and noisy: the inputs, seed-independent):\n")
    print(markdown_table(rows, ["seed", "method", *SCORES, "train steps"]))
    cap = "" if args.minutes is None else f", capped at {args.minutes:g} min"
    print(
        f"\nmean over seeds {args.seeds} (N2V {args.steps} steps, joint {args.joint_steps} "
        f"steps{cap}, segmenters {args.seg_steps} steps):\n"
    )
    print(markdown_table(means))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "rows": rows,
        "means": means,
        "args": recorded_args(args),
        "segmenter_steps": seg_steps,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(record, indent=2, default=float))
    shutil.rmtree(work)
    print(f"\nwrote {args.out} ({record['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
