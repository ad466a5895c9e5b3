"""Commands that make data, judge methods and re-run the paper's experiments:
``synth``, ``evaluate`` and ``reproduce em|plaques|nuclei|masking``. Each is a few lines over
:mod:`semdenoise.synth`, :mod:`semdenoise.evaluation` and :mod:`semdenoise.experiments`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semdenoise.config import DEFAULT_BASELINE_STEPS
from semdenoise.errors import InputError
from semdenoise.report import markdown_table

reproduce_app = typer.Typer(
    no_args_is_help=True, help="Re-run one of the paper's experiments and write its report."
)

ReportDir = Annotated[
    Path, typer.Option("--out", help="Folder for report.md, report.json, figures.")
]
Quick = Annotated[bool, typer.Option(help="A few minutes on 2 CPU cores instead of the full run.")]
SeedOption = Annotated[int, typer.Option(help="Seed for data, noise and training.")]
SeedsOption = Annotated[
    int | None,
    typer.Option(
        "--seeds",
        help="Train with this many seeds (--seed, --seed+1, ...) and report means with 95 % "
        "intervals over seeds; default 3 for the full run, 1 with --quick.",
    ),
]


def _seeds(first: int, count: int | None, quick: bool) -> list[int]:
    count = (1 if quick else 3) if count is None else count
    if count < 1:
        raise InputError(f"--seeds must be at least 1, got {count}")
    return list(range(first, first + count))


def synth_command(
    task: Annotated[str, typer.Argument(help="plaques (the noisy target task) or somata.")],
    out: Annotated[Path, typer.Argument(help="Folder to write the stacks into.")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 16,
    size: Annotated[int, typer.Option(help="Side of each image in pixels.")] = 256,
    depth: Annotated[
        int | None, typer.Option(help="Z slices per image: ZYX volumes instead of 2-D images.")
    ] = None,
    seed: SeedOption = 0,
    photons: Annotated[
        float | None, typer.Option(help="Photons per intensity unit (lower: noisier).")
    ] = None,
    read_noise: Annotated[float | None, typer.Option(help="Gaussian read-noise sigma.")] = None,
    correlation: Annotated[
        float, typer.Option(help="Spatial correlation width of the noise in pixels (0: none).")
    ] = 0.0,
) -> None:
    """Write synthetic images: clean.tif, noisy.tif, masks.tif, instances.tif, meta.json."""
    from semdenoise.synth.files import write_set

    images = write_set(
        task,
        out,
        n=n,
        size=size,
        depth=depth,
        seed=seed,
        photons_per_unit=photons,
        read_sigma=read_noise,
        correlation=correlation,
    )
    typer.echo(f"wrote {n} {task} image(s) of {images.clean.shape[1:]} to {out}")


def _method_specs(specs: list[str]) -> list[tuple[str, Path]]:
    parsed = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--method {spec!r}: expected NAME=MODEL.pt")
        parsed.append((name, Path(path)))
    return parsed


def evaluate_command(
    noisy: Annotated[Path, typer.Option("--noisy", help="Noisy image or stack to denoise.")],
    out: ReportDir,
    clean: Annotated[
        Path | None, typer.Option("--clean", help="Clean versions, for PSNR/SSIM.")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Target masks, for IoU and detection.")
    ] = None,
    instances: Annotated[
        Path | None,
        typer.Option(help="Instance labels for detection (default: the labels' components)."),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="NAME=MODEL.pt, a trained denoiser; repeatable."),
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(
            help="Comma-separated: gaussian, nlm, tv, bm3d, n2v-grid, n2v-patch, all, or none."
        ),
    ] = "none",
    segmenter: Annotated[
        str | None,
        typer.Option(
            help="Fixed segmenter for IoU/F1: a model file, or 'otsu' (default when labels "
            "are given without one)."
        ),
    ] = None,
    baseline_steps: Annotated[
        int, typer.Option(min=1, help="Training steps of each N2V baseline (on the noisy images).")
    ] = DEFAULT_BASELINE_STEPS,
    baseline_minutes: Annotated[
        float | None,
        typer.Option(
            help="Also stop each N2V baseline after this time (then its result depends on "
            "the machine's load)."
        ),
    ] = None,
    noise_sigma: Annotated[
        float | None,
        typer.Option(
            help="Known Gaussian noise sigma: BM3D denoises at it and every learned method "
            "(N2V baselines and --method models) blends with the observed pixel at it."
        ),
    ] = None,
    data_range: Annotated[
        float | None, typer.Option(help="PSNR/SSIM data range (default: the clean range).")
    ] = None,
    axes: Annotated[
        str | None,
        typer.Option(
            help="Axes of the noisy and clean images, one-channel layouts (S, T, Z, Y, X in "
            "any order, e.g. YXS; labels: the same); default YX, a 3-D array a stack SYX."
        ),
    ] = None,
) -> None:
    """Compare denoisers on the same images: report.md, report.json and figures."""
    from semdenoise.evaluation import evaluate_files

    specs = _method_specs(method or [])
    names = [] if baselines == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    report = evaluate_files(
        noisy,
        out,
        clean=clean,
        labels=labels,
        instances=instances,
        models=specs,
        baselines=names,
        segmenter=segmenter,
        baseline_steps=baseline_steps,
        baseline_minutes=baseline_minutes,
        noise_sigma=noise_sigma,
        data_range=data_range,
        axes=axes,
    )
    typer.echo(f"wrote {report}")


@reproduce_app.command("plaques")
def reproduce_plaques(
    out: ReportDir = Path("reports/plaques"),
    quick: Quick = False,
    seed: SeedOption = 0,
    seeds: SeedsOption = None,
) -> None:
    """§3.5: unsupervised joint training with a somata style segmenter, on synthetic plaques."""
    from semdenoise.evaluation.report import displayed
    from semdenoise.experiments.plaques import PlaquesSettings, run_plaques_seeds

    settings = PlaquesSettings.quick(seed) if quick else PlaquesSettings(seed=seed)
    result = run_plaques_seeds(out, _seeds(seed, seeds, quick), settings)
    columns = ["method", "PSNR", "SSIM", "IoU", "F1", "AP"]
    typer.echo(markdown_table([displayed(r) for r in result["rows"]], columns))
    typer.echo(f"wrote {out / 'report.md'} ({result['wall_seconds']:.0f} s)")


@reproduce_app.command("em")
def reproduce_em(
    out: ReportDir = Path("reports/em"),
    quick: Quick = False,
    seed: SeedOption = 0,
    seeds: SeedsOption = None,
    data: Annotated[Path, typer.Option(help="Folder with the Lucchi EM stacks.")] = Path(
        "../shared/data/lucchi_em"
    ),
) -> None:
    """§3.4: N2V vs supervised joint on noisy EM at three noise levels."""
    from semdenoise.experiments.em import EMSettings, run_em_seeds

    settings = EMSettings.quick(seed) if quick else EMSettings(seed=seed)
    result = run_em_seeds(out, _seeds(seed, seeds, quick), settings, data=data)
    typer.echo(f"wrote {out / 'report.md'} ({result['wall_seconds']:.0f} s)")


@reproduce_app.command("nuclei")
def reproduce_nuclei(
    out: ReportDir = Path("reports/nuclei"),
    quick: Quick = False,
    seed: SeedOption = 0,
    seeds: SeedsOption = None,
    data: Annotated[
        Path, typer.Option(help="Folder with the DSB2018 nuclei (images/, masks/).")
    ] = Path("../shared/data/dsb2018_fluo"),
) -> None:
    """Few labels on noisy nuclei: a segmenter alone, N2V then a segmenter, or joint."""
    from semdenoise.evaluation.report import displayed
    from semdenoise.experiments.nuclei import NucleiSettings, run_nuclei_seeds

    settings = NucleiSettings.quick(seed) if quick else NucleiSettings(seed=seed)
    result = run_nuclei_seeds(out, _seeds(seed, seeds, quick), settings, data=data)
    columns = ["sigma", "labelled", "method", "AP", "SEG", "F1", "PSNR"]
    typer.echo(markdown_table([displayed(r) for r in result["rows"]], columns))
    typer.echo(f"wrote {out / 'report.md'} ({result['wall_seconds']:.0f} s)")


@reproduce_app.command("masking")
def reproduce_masking(
    out: ReportDir = Path("reports/masking"), quick: Quick = False, seed: SeedOption = 0
) -> None:
    """Fig. 6–7: PSNR against masked pixels, loss spread over initialisations."""
    from semdenoise.experiments.masking import MaskingSettings, run_masking

    settings = MaskingSettings.quick(seed) if quick else MaskingSettings(seed=seed)
    result = run_masking(out, settings)
    typer.echo(f"wrote {out / 'report.md'} ({result['wall_seconds']:.0f} s)")
