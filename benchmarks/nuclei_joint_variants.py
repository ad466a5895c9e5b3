"""Which joint training wins with few labels: variants of Eq. 3 against the baseline and
the sequential pipeline on DSB2018 nuclei (issue 15, item 5).

The protocol of ``semdenoise reproduce nuclei`` (experiments/nuclei.py): Gaussian noise
of sigma on 0–255, ``--labelled`` training images keep their labels (chosen by the seed),
every pipeline trains ``--steps`` optimiser steps in total and predicts instances. With
``--split dev`` (the default, for choosing a method) the *training* images are split
again, every third one held out for scoring, so no test image is ever looked at; with
``--split test`` the pipelines train on every training image and score the test images.

Variants are JointConfig fields, e.g. ``both:segment_input=both`` or
``both-ramp:segment_input=both,labelled_share=0.8``. Per seed: one N2V (steps x
n2v_share) shared by sequential; baseline, sequential and each joint variant. Prints a
table of AP (mean over seeds, t-interval, per seed) and of each variant minus the
baseline and the sequential pipeline, seed by seed; writes JSON.

    cd benchmarks && python nuclei_joint_variants.py --seeds 0 1 2 \
        --variants joint: both:segment_input=both --out results/issue15/dev.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cli_runs import recorded_args
from semdenoise.config import (
    NO_NOISE_MODEL,
    PAPER_MASKING,
    JointConfig,
    MaskingConfig,
    cpu_training,
    cpu_unet,
)
from semdenoise.experiments.em import add_gaussian_noise
from semdenoise.experiments.nuclei import (
    DEFAULT_DATA,
    NOISE_SEED,
    NucleiData,
    labelled_subset,
    load_nuclei,
    score_pipeline,
)
from semdenoise.experiments.seeds import seed_interval
from semdenoise.report import markdown_table

logger = logging.getLogger("nuclei_joint_variants")


def development_split(data: NucleiData) -> NucleiData:
    """The training images only: every third one (in order) scores, the others train."""
    dev = NucleiData([], [], [], [], [])
    for k, (image, labels) in enumerate(zip(data.train_images, data.train_labels, strict=True)):
        if k % 3 == 2:
            dev.test_images.append(image)
            dev.test_labels.append(labels)
            dev.test_ids.append(f"train{k}")
        else:
            dev.train_images.append(image)
            dev.train_labels.append(labels)
    return dev


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, fields = spec.partition(":")
    values: dict[str, Any] = {}
    for item in filter(None, fields.split(",")):
        key, _, raw = item.partition("=")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    JointConfig(**values)  # a wrong field fails before anything trains
    return name, values


def run_seed(
    data: NucleiData, sigma: float, count: int, steps: int, seed: int, variants: list, args
) -> dict[str, dict[str, Any]]:
    from semdenoise.predict import denoise, segment
    from semdenoise.training import train_joint, train_n2v, train_seg

    noisy = [
        add_gaussian_noise(x, sigma, NOISE_SEED + 1 + i) for i, x in enumerate(data.train_images)
    ]
    noisy_test = [
        add_gaussian_noise(x, sigma, NOISE_SEED + 1000 + i) for i, x in enumerate(data.test_images)
    ]
    labelled = labelled_subset(len(noisy), count, seed)
    images = [noisy[i] for i in labelled]
    targets = [data.train_labels[i] for i in labelled]
    partial = [data.train_labels[i] if i in set(labelled) else None for i in range(len(noisy))]
    n2v_steps = round(steps * args.n2v_share)
    # the paper's masking (one pixel in 388, as `reproduce` pins) or the library's default
    masking = PAPER_MASKING if args.masking == "paper" else MaskingConfig()
    # the denoisers' blind-spot blur (segmenters have none)
    denoiser = cpu_unet(blind_filter=args.blind_filter)

    def budget(n: int):
        return cpu_training(n, seed, val_fraction=0.0, crop_size=args.crop, batch_size=args.batch)

    results: dict[str, dict[str, Any]] = {}

    def score(name: str, pipeline, started: float) -> None:
        summary, _ = score_pipeline(pipeline, noisy_test, data.test_images, data.test_labels)
        summary["train_seconds"] = round(time.perf_counter() - started, 1)
        results[name] = summary
        logger.info(
            "seed %d %s: AP %.3f (%.0f s)", seed, name, summary["AP"], summary["train_seconds"]
        )

    if args.clean_reference:  # the same segmenter on noise-free images: what noise costs
        started = time.perf_counter()
        clean = [data.train_images[i] for i in labelled]
        upper = train_seg(clean, targets, unet=cpu_unet(), target="instances", train=budget(steps))
        results["clean (reference)"] = score_pipeline(
            lambda x: (segment(upper, x, instances=True), None),
            data.test_images,
            data.test_images,
            data.test_labels,
        )[0]
        if args.only_clean:
            return results
    if not args.skip_baseline:
        started = time.perf_counter()
        baseline = train_seg(
            images, targets, unet=cpu_unet(), target="instances", train=budget(steps)
        )
        score("baseline", lambda x: (segment(baseline, x, instances=True), None), started)
    started = time.perf_counter()
    n2v = train_n2v(
        noisy, unet=denoiser, noise=NO_NOISE_MODEL, masking=masking, train=budget(n2v_steps)
    )
    restored = [denoise(n2v, x) for x in images]
    sequential = train_seg(
        restored, targets, unet=cpu_unet(), target="instances", train=budget(steps - n2v_steps)
    )

    def seq(x):
        d = denoise(n2v, x)
        return segment(sequential, d, instances=True), d

    score("sequential", seq, started)
    for name, values in variants:
        started = time.perf_counter()
        joint = train_joint(
            list(noisy),
            labels=partial,
            unet=denoiser,
            masking=masking,
            joint=JointConfig(segment_target="instances", **values),
            train=budget(steps),
        )
        score(name, lambda x, m=joint: (segment(m, x, instances=True), denoise(m, x)), started)
    return results


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the Student-t 95 % interval over seeds (the reports' ``seed_interval``)."""
    mean = float(np.mean(values))
    low, high = seed_interval(values) or (mean, mean)
    return mean, low, high


def table(per_seed: dict[int, dict[str, dict[str, Any]]], score: str = "AP") -> str:
    seeds = sorted(per_seed)
    methods = list(per_seed[seeds[0]])
    rows = []
    for method in methods:
        values = [per_seed[s][method][score] for s in seeds]
        mean, low, high = interval(values)
        row = {
            "method": method,
            score: f"{mean:.3f} ({low:.3f}–{high:.3f})",
            "per seed": ", ".join(f"{v:.3f}" for v in values),
        }
        for reference in ("baseline", "sequential"):
            if method in ("baseline", "sequential", "clean (reference)") or (
                reference not in per_seed[seeds[0]]
            ):
                row[f"minus {reference}"] = ""
                continue
            diffs = [per_seed[s][method][score] - per_seed[s][reference][score] for s in seeds]
            m, lo, hi = interval(diffs)
            won = sum(d > 0 for d in diffs)
            row[f"minus {reference}"] = f"{m:+.3f} ({lo:+.3f}–{hi:+.3f}), {won}/{len(diffs)} seeds"
        rows.append(row)
    return markdown_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("..") / DEFAULT_DATA)
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--sigma", type=float, default=20.0)
    parser.add_argument("--labelled", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--n2v-share", type=float, default=0.5)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--masking",
        choices=("paper", "default"),
        default="paper",
        help="N2V masking of the sequential N2V and of every joint variant",
    )
    parser.add_argument(
        "--blind-filter",
        type=int,
        default=0,
        help="the denoisers' UNetConfig.blind_filter (default 0, none, as cpu_unet())",
    )
    parser.add_argument(
        "--skip-baseline",
        action="store_true",
        help="train only sequential and the variants (baseline measured before)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["joint:"])
    parser.add_argument(
        "--clean-reference",
        action="store_true",
        help="also a segmenter trained and scored on the clean images",
    )
    parser.add_argument("--only-clean", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    data = load_nuclei(args.data)
    if args.split == "dev":
        data = development_split(data)
    variants = [parse_variant(v) for v in args.variants]
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(data, args.sigma, args.labelled, args.steps, seed, variants, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"args": recorded_args(args), "per_seed": per_seed}, indent=1, default=str)
        )
    print(
        f"\nsigma {args.sigma:g}, {args.labelled} labelled, {args.steps} steps, split "
        f"{args.split} ({len(data.train_images)} train / {len(data.test_images)} scored)\n"
    )
    print(table(per_seed))


if __name__ == "__main__":
    main()
