"""``semdenoise check``: quality checks that need no clean image, a few lines over
:mod:`semdenoise.evaluation.no_reference`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from semdenoise.config import DEFAULT_TILE_SIZE
from semdenoise.errors import InputError

INPUT_ROW = "input as is"

READING = """\
Blind-spot loss: squared error on pixels the denoiser was not shown (N2V-style masking), \
in squared input units; it estimates the error to the clean image plus the noise variance, \
so lower is better and the denoiser helps only where it beats the input as is (doing nothing).
Residual (input - output): for pixel-independent noise its mean, its lag-1 autocorrelation \
and its correlation with the output should all be near 0: positive values mean structure \
was removed with the noise (blur), negative autocorrelation that only the finest grain of \
the noise was removed, negative correlation that contrast was exaggerated or invented, and \
a mean far from 0 a brightness shift.
Spatially correlated noise (scan lines, drift) breaks these assumptions: then the residual \
is correlated even for a perfect denoiser."""


def check_command(
    model: Annotated[Path, typer.Argument(help="Model file holding a denoiser (N2V or joint).")],
    images: Annotated[Path, typer.Argument(help="Image, stack (TIFF/NPY/Zarr/PNG) or folder.")],
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write every number to this JSON file.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the blind-spot masking.")] = 0,
    repeats: Annotated[
        int | None,
        typer.Option(help="Maskings averaged per image for the blind-spot loss (default 2)."),
    ] = None,
    tile_size: Annotated[
        int | None,
        typer.Option(help=f"Largest window side fed to the network (default {DEFAULT_TILE_SIZE})."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    axes: Annotated[
        str | None,
        typer.Option(
            help="The images' axes, one-channel layouts (S, T, Z, Y, X in any order, e.g. "
            "YXS); default YX, a 3-D array a stack SYX."
        ),
    ] = None,
) -> None:
    """Quality checks that need no clean image: blind-spot loss and residual statistics
    of the model's denoiser on each image, against the input as is."""
    from semdenoise.evaluation.no_reference import (
        BLIND_SPOT,
        DEFAULT_REPEATS,
        NO_REFERENCE_COLUMNS,
        no_reference_checks,
        unchanged,
    )
    from semdenoise.io import load_model, read_training_images
    from semdenoise.io.atomic import atomic_path
    from semdenoise.io.images import same_path
    from semdenoise.predict import denoise
    from semdenoise.report import markdown_table

    repeats = DEFAULT_REPEATS if repeats is None else repeats
    if (tile_size is not None and tile_size < 8) or repeats < 1:
        raise InputError("--tile-size must be at least 8 and --repeats at least 1")
    if json_path is not None:
        if any(same_path(json_path, given) for given in (model, images)):
            raise InputError(f"{json_path}: output would overwrite an input; choose another name")
        if not json_path.parent.is_dir():
            raise InputError(f"{json_path}: folder {json_path.parent} does not exist")
    loaded = load_model(model)
    net = loaded.denoiser
    if net is None:
        raise InputError(f"{model}: model of kind {loaded.kind!r} holds no denoiser")
    if net.config.dims != 2:
        raise InputError(f"{model}: check works on 2-D denoisers, this one is 3-D")
    if net.config.in_channels > 1:
        raise InputError(
            f"{model}: check works on one-channel denoisers, this one takes "
            f"{net.config.in_channels} channels"
        )
    if axes is not None and "C" in axes.upper():
        raise InputError(f"--axes {axes}: check works on one-channel images (no C axis)")
    slices = read_training_images(images, axes=axes)
    sources = [source for source, _ in slices]
    planes = [plane for _, plane in slices]
    options: dict[str, Any] = {"device": device}
    options |= {} if tile_size is None else {"tile_size": tile_size}
    # the plain outputs first: each slice is checked (size, range) under its own name
    options["axes"] = "YX"  # each image on its own, whatever axes the model was trained on
    denoised = [denoise(loaded, plane, source=source, **options) for source, plane in slices]

    def run(image):
        return denoise(loaded, image, source=f"{images} (masked)", **options)

    checks = {"names": sources, "seed": seed, "repeats": repeats}
    rows = no_reference_checks(planes, run, name=model.name, denoised=denoised, **checks)
    reference = no_reference_checks(planes, unchanged, name=INPUT_ROW, **checks)
    reference = [{k: row[k] for k in ("method", "image", BLIND_SPOT)} for row in reference]
    typer.echo(markdown_table([*rows, reference[-1]], NO_REFERENCE_COLUMNS))
    typer.echo("")
    typer.echo(READING)
    if json_path is not None:
        data = {
            "model": str(model),
            "images": str(images),
            "seed": seed,
            "repeats": repeats,
            "denoised": rows,
            "input": reference,
        }
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(data, indent=2))
        typer.echo(f"wrote {json_path}")
