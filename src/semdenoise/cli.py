"""The command line: each command a few lines over the library.

Errors a user can cause print one line, ``error: ...``, on stderr and exit with code 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from semdenoise.config import MaskingConfig, TrainConfig, UNetConfig, parse
from semdenoise.errors import InputError, SemdenoiseError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Self-supervised microscopy denoising that gets better from semantic labels.",
)
train_app = typer.Typer(no_args_is_help=True, help="Train a model.")
app.add_typer(train_app, name="train")


def _help(config: type, field: str) -> str:
    """A field's description is its CLI help (one source of truth)."""
    return config.model_fields[field].description or ""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _refuse_overwrite(out: Path, *inputs: Path) -> None:
    from semdenoise.io.images import same_path

    for source in inputs:
        if source.exists() and same_path(out, source):
            raise InputError(f"{out}: output would overwrite an input; choose another name")


@train_app.command("n2v")
def train_n2v_command(
    images: Annotated[Path, typer.Argument(help="Image, stack (TIFF/NPY/Zarr/PNG) or folder.")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (.pt).")],
    steps: Annotated[int | None, typer.Option(help=_help(TrainConfig, "steps"))] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help=_help(TrainConfig, "max_minutes"))
    ] = None,
    seed: Annotated[int, typer.Option(help=_help(TrainConfig, "seed"))] = 0,
    checkpoint_every: Annotated[
        int, typer.Option(help=_help(TrainConfig, "checkpoint_every"))
    ] = 500,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")] = False,
    masking: Annotated[str, typer.Option(help=_help(MaskingConfig, "mode"))] = "grid",
    replacement: Annotated[
        str, typer.Option(help=_help(MaskingConfig, "replacement"))
    ] = "neighbour",
    n_masked: Annotated[int | None, typer.Option(help=_help(MaskingConfig, "n_masked"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_help(TrainConfig, "batch_size"))] = None,
    crop_size: Annotated[int | None, typer.Option(help=_help(TrainConfig, "crop_size"))] = None,
    learning_rate: Annotated[float, typer.Option(help=_help(TrainConfig, "learning_rate"))] = 4e-4,
    val_fraction: Annotated[float, typer.Option(help=_help(TrainConfig, "val_fraction"))] = 0.1,
    depth: Annotated[int, typer.Option(help=_help(UNetConfig, "depth"))] = 2,
    base_channels: Annotated[int, typer.Option(help=_help(UNetConfig, "base_channels"))] = 32,
    residual: Annotated[bool, typer.Option(help=_help(UNetConfig, "residual"))] = True,
    device: Annotated[str, typer.Option(help=_help(TrainConfig, "device"))] = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a Noise2Void denoiser (grid masking on full images by default)."""
    from semdenoise.training import train_n2v

    _refuse_overwrite(out, images)
    train = parse(
        TrainConfig,
        _given(
            steps=steps,
            max_minutes=max_minutes,
            seed=seed,
            checkpoint_every=checkpoint_every,
            batch_size=batch_size,
            crop_size=crop_size,
            learning_rate=learning_rate,
            val_fraction=val_fraction,
            device=device,
        ),
        source="train options",
    )
    mask = parse(
        MaskingConfig,
        _given(mode=masking, replacement=replacement, n_masked=n_masked),
        source="masking options",
    )
    unet = parse(
        UNetConfig,
        {"depth": depth, "base_channels": base_channels, "residual": residual},
        source="network",
    )
    model = train_n2v(
        images, unet=unet, masking=mask, train=train, out=out, resume=resume, progress=progress
    )
    summary = model.training
    typer.echo(
        f"wrote {out}: {summary['steps']} steps in {summary['seconds']:.0f} s on "
        f"{summary['images']} image(s)"
    )


def _given(**values: Any) -> dict[str, Any]:
    """Only the options the user set, so config defaults stay the single source of truth."""
    return {k: v for k, v in values.items() if v is not None}


@app.command("denoise")
def denoise_command(
    model: Annotated[Path, typer.Argument(help="Model file holding a denoiser.")],
    source: Annotated[Path, typer.Argument(metavar="IN", help="Image or stack to denoise.")],
    target: Annotated[Path, typer.Argument(metavar="OUT", help="Output (.tif, .npy, .zarr).")],
    tile_size: Annotated[int, typer.Option(help="Largest window side fed to the network.")] = 1024,
    batch_size: Annotated[
        int | None, typer.Option(help="Windows per forward pass (default: ~2 megapixels).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    tta: Annotated[
        bool, typer.Option(help="Average over the 8 rotations/flips (8x slower).")
    ] = False,
) -> None:
    """Denoise an image or stack; writes float32 in the input's intensity scale."""
    from semdenoise.io import load_model, read_image, write_image
    from semdenoise.predict import denoise

    _refuse_overwrite(target, source, model)
    if tile_size < 8 or (batch_size is not None and batch_size < 1):
        raise InputError("--tile-size must be at least 8 and --batch-size at least 1")
    loaded = load_model(model)
    image = read_image(source)
    denoised = denoise(
        loaded,
        image,
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        source=str(source),
    )
    write_image(target, denoised, inputs=(source, model))
    typer.echo(f"wrote {target}: {denoised.shape} float32")


def main() -> None:
    """Entry point: run the app, turning library errors into one line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        app(standalone_mode=False)
    except SemdenoiseError as e:
        _report(str(e))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        import click

        if isinstance(e, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            sys.exit(130)
        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


def _report(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
