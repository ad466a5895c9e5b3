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

from semdenoise.cli_check import check_command
from semdenoise.cli_evaluation import evaluate_command, reproduce_app, synth_command
from semdenoise.config import JointConfig, MaskingConfig, TrainConfig, UNetConfig, parse
from semdenoise.errors import InputError, SemdenoiseError, TrainingInterrupted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Self-supervised microscopy denoising that gets better from semantic labels.",
)
train_app = typer.Typer(no_args_is_help=True, help="Train a model.")
app.add_typer(train_app, name="train")
app.command("synth")(synth_command)
app.command("evaluate")(evaluate_command)
app.command("check")(check_command)
app.add_typer(reproduce_app, name="reproduce")


def _help(config: type, field: str) -> str:
    """A field's description is its CLI help (one source of truth)."""
    return config.model_fields[field].description or ""


# Options shared by every training command (DESIGN.md: "same training flags").
Images = Annotated[Path, typer.Argument(help="Image, stack (TIFF/NPY/Zarr/PNG) or folder.")]
Out = Annotated[Path, typer.Option("--out", help="Model file to write (.pt).")]
Steps = Annotated[int | None, typer.Option(help=_help(TrainConfig, "steps"))]
MaxMinutes = Annotated[float | None, typer.Option(help=_help(TrainConfig, "max_minutes"))]
Seed = Annotated[int, typer.Option(help=_help(TrainConfig, "seed"))]
CheckpointEvery = Annotated[int, typer.Option(help=_help(TrainConfig, "checkpoint_every"))]
Resume = Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")]
BatchSize = Annotated[int | None, typer.Option(help=_help(TrainConfig, "batch_size"))]
CropSize = Annotated[int | None, typer.Option(help=_help(TrainConfig, "crop_size"))]
LearningRate = Annotated[float, typer.Option(help=_help(TrainConfig, "learning_rate"))]
ValFraction = Annotated[float, typer.Option(help=_help(TrainConfig, "val_fraction"))]
Depth = Annotated[int, typer.Option(help=_help(UNetConfig, "depth"))]
BaseChannels = Annotated[int, typer.Option(help=_help(UNetConfig, "base_channels"))]
Residual = Annotated[bool, typer.Option(help=_help(UNetConfig, "residual"))]
Device = Annotated[str, typer.Option(help=_help(TrainConfig, "device"))]
Progress = Annotated[bool, typer.Option(help="Show a progress bar.")]
Masking = Annotated[str, typer.Option(help=_help(MaskingConfig, "mode"))]
Replacement = Annotated[str, typer.Option(help=_help(MaskingConfig, "replacement"))]
NMasked = Annotated[int | None, typer.Option(help=_help(MaskingConfig, "n_masked"))]
Labels = Annotated[
    Path,
    typer.Option(
        "--labels",
        help="Masks or label images matching IMAGES; a folder pairs with an IMAGES folder by "
        "file name, and images without a label file are unlabelled (partial labels).",
    ),
]
SegTargetOption = Annotated[
    str, typer.Option("--target", help=_help(JointConfig, "segment_target"))
]
IgnoreLabel = Annotated[
    int | None,
    typer.Option(help="Label value marking unlabelled pixels (no segmentation loss there)."),
]


def _given(**values: Any) -> dict[str, Any]:
    """Only the options the user set, so config defaults stay the single source of truth."""
    return {k: v for k, v in values.items() if v is not None}


def _refuse_overwrite(out: Path, *inputs: Path | None) -> None:
    from semdenoise.io.images import same_path

    for source in inputs:
        if source is not None and source.exists() and same_path(out, source):
            raise InputError(f"{out}: output would overwrite an input; choose another name")


def _configs(**options: Any) -> dict[str, Any]:
    """Validated configs from the shared training options."""
    train_fields = set(TrainConfig.model_fields)
    train = parse(
        TrainConfig,
        _given(**{k: v for k, v in options.items() if k in train_fields}),
        source="train options",
    )
    unet = parse(
        UNetConfig,
        _given(
            **{
                k: options.get(k)
                for k in ("dims", "depth", "base_channels", "residual", "xy_only_levels")
            }
        ),
        source="network options",
    )
    masking = parse(
        MaskingConfig,
        _given(
            mode=options.get("masking"),
            replacement=options.get("replacement"),
            n_masked=options.get("n_masked"),
        ),
        source="masking options",
    )
    return {"train": train, "unet": unet, "masking": masking}


def _report_trained(out: Path, model: Any) -> None:
    summary = model.training
    typer.echo(
        f"wrote {out}: {summary['steps']} steps in {summary['seconds']:.0f} s on "
        f"{summary['images']} image(s)"
    )


@train_app.command("n2v")
def train_n2v_command(
    images: Images,
    out: Out,
    steps: Steps = None,
    max_minutes: MaxMinutes = None,
    seed: Seed = 0,
    checkpoint_every: CheckpointEvery = 500,
    resume: Resume = False,
    masking: Masking = "grid",
    replacement: Replacement = "neighbour",
    n_masked: NMasked = None,
    batch_size: BatchSize = None,
    crop_size: CropSize = None,
    learning_rate: LearningRate = 4e-4,
    val_fraction: ValFraction = 0.1,
    depth: Depth = 2,
    base_channels: BaseChannels = 32,
    residual: Residual = True,
    device: Device = "auto",
    progress: Progress = True,
    dims: Annotated[int, typer.Option(help=_help(UNetConfig, "dims"))] = 2,
    crop_depth: Annotated[int | None, typer.Option(help=_help(TrainConfig, "crop_depth"))] = None,
    xy_only_levels: Annotated[int, typer.Option(help=_help(UNetConfig, "xy_only_levels"))] = 0,
) -> None:
    """Train a Noise2Void denoiser (grid masking on full images by default; --dims 3: a
    3-D network on (Z, Y, X) volumes, one per file)."""
    from semdenoise.training import train_n2v

    _refuse_overwrite(out, images)
    configs = _configs(**locals())
    model = train_n2v(images, **configs, out=out, resume=resume, progress=progress)
    _report_trained(out, model)


@train_app.command("seg")
def train_seg_command(
    images: Images,
    labels: Labels,
    out: Out,
    loss: Annotated[
        str, typer.Option(help="bce, dice, bce+dice, or mse (a style segmenter).")
    ] = "bce",
    target: SegTargetOption = "foreground",
    ignore_label: IgnoreLabel = None,
    steps: Steps = None,
    max_minutes: MaxMinutes = None,
    seed: Seed = 0,
    checkpoint_every: CheckpointEvery = 500,
    resume: Resume = False,
    batch_size: BatchSize = None,
    crop_size: CropSize = None,
    learning_rate: LearningRate = 4e-4,
    val_fraction: ValFraction = 0.1,
    depth: Depth = 2,
    base_channels: BaseChannels = 32,
    device: Device = "auto",
    progress: Progress = True,
) -> None:
    """Train a segmenter on images and their labels (any non-zero label is foreground;
    --target instances learns to separate touching objects)."""
    from semdenoise.training import train_seg

    _refuse_overwrite(out, images, labels)
    if loss not in ("bce", "dice", "bce+dice", "mse"):
        raise InputError(f"--loss {loss!r}: expected bce, dice, bce+dice or mse")
    configs = _configs(**locals())
    model = train_seg(
        images,
        labels,
        unet=configs["unet"],
        loss=loss,
        target=target,
        ignore_label=ignore_label,
        train=configs["train"],
        out=out,
        resume=resume,
        progress=progress,
    )
    _report_trained(out, model)


@train_app.command("joint")
def train_joint_command(
    images: Images,
    out: Out,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Labels matching IMAGES: supervised mode (Eq. 3). A folder pairs with an "
            "IMAGES folder by file name; images without a label file train the denoiser only."
        ),
    ] = None,
    target: SegTargetOption = "foreground",
    ignore_label: IgnoreLabel = None,
    style_segmenter: Annotated[
        Path | None,
        typer.Option(help="Segmenter of a related task, frozen: unsupervised mode (Eq. 4)."),
    ] = None,
    init: Annotated[Path | None, typer.Option(help="Start the denoiser from an N2V model.")] = None,
    denoise_weight: Annotated[
        float | None, typer.Option(help=_help(JointConfig, "denoise_weight"))
    ] = None,
    segment_weight: Annotated[
        float | None, typer.Option(help=_help(JointConfig, "segment_weight"))
    ] = None,
    pretrain_fraction: Annotated[
        float, typer.Option(help=_help(JointConfig, "pretrain_fraction"))
    ] = 0.1,
    pretrain_denoiser: Annotated[
        bool, typer.Option(help=_help(JointConfig, "pretrain_denoiser"))
    ] = False,
    style_gradient: Annotated[
        bool, typer.Option(help=_help(JointConfig, "style_gradient"))
    ] = False,
    steps: Steps = None,
    max_minutes: MaxMinutes = None,
    seed: Seed = 0,
    checkpoint_every: CheckpointEvery = 500,
    resume: Resume = False,
    masking: Masking = "grid",
    replacement: Replacement = "neighbour",
    n_masked: NMasked = None,
    batch_size: BatchSize = None,
    crop_size: CropSize = None,
    learning_rate: LearningRate = 4e-4,
    val_fraction: ValFraction = 0.1,
    depth: Depth = 2,
    base_channels: BaseChannels = 32,
    residual: Residual = True,
    device: Device = "auto",
    progress: Progress = True,
) -> None:
    """Train denoiser and segmenter end to end: with --labels (Eq. 3) or with a frozen
    --style-segmenter (Eq. 4)."""
    from semdenoise.training import train_joint

    _refuse_overwrite(out, images, labels, style_segmenter, init)
    configs = _configs(**locals())
    joint = parse(
        JointConfig,
        _given(
            denoise_weight=denoise_weight,
            segment_weight=segment_weight,
            pretrain_fraction=pretrain_fraction,
            pretrain_denoiser=pretrain_denoiser,
            style_gradient=style_gradient,
            segment_target=target,
        ),
        source="joint options",
    )
    model = train_joint(
        images,
        labels=labels,
        ignore_label=ignore_label,
        style_segmenter=style_segmenter,
        init=init,
        joint=joint,
        **configs,
        out=out,
        resume=resume,
        progress=progress,
    )
    _report_trained(out, model)


Model = Annotated[Path, typer.Argument(help="Model file.")]
Source = Annotated[Path, typer.Argument(metavar="IN", help="Image or stack.")]
Target = Annotated[Path, typer.Argument(metavar="OUT", help="Output (.tif, .npy, .zarr).")]
TileSize = Annotated[int, typer.Option(help="Largest window side fed to the network.")]
WindowBatch = Annotated[
    int | None, typer.Option("--batch-size", help="Windows per pass (default: ~2 megapixels).")
]
PredictDevice = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]


def _check_prediction_options(tile_size: int, batch_size: int | None) -> None:
    if tile_size < 8 or (batch_size is not None and batch_size < 1):
        raise InputError("--tile-size must be at least 8 and --batch-size at least 1")


@app.command("denoise")
def denoise_command(
    model: Model,
    source: Source,
    target: Target,
    tile_size: Annotated[
        int | None,
        typer.Option(
            help="Largest window side fed to the network (default 1024; Zarr to Zarr: "
            "one window per chunk)."
        ),
    ] = None,
    batch_size: WindowBatch = None,
    device: PredictDevice = "auto",
    tta: Annotated[
        bool, typer.Option(help="Average over the 8 rotations/flips (8x slower).")
    ] = False,
    noise_sigma: Annotated[
        str | None,
        typer.Option(
            metavar="SIGMA|auto",
            help="Gaussian noise sigma in the input's units, or 'auto' to estimate it per "
            "slice: blends the observed pixel back in (N2V models).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Zarr to Zarr: 'threads' (default), or the address of a running "
            "dask.distributed scheduler, e.g. tcp://host:8786."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Zarr to Zarr: local worker threads (default 1).")
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(help="Zarr to Zarr: Y/X side of the chunks worked on (default 1024)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Zarr to Zarr: continue an interrupted run of the same model, input and "
            "options, skipping written chunks; --no-resume starts over."
        ),
    ] = True,
) -> None:
    """Denoise an image or stack; writes float32 in the input's intensity scale.

    Zarr to Zarr runs chunk by chunk on Dask (memory bounded by the chunk, not the
    image) and writes OME-Zarr.
    """
    from semdenoise.io import load_model, read_image, write_image
    from semdenoise.predict import denoise, denoise_zarr

    _refuse_overwrite(target, source, model)
    _check_prediction_options(1024 if tile_size is None else tile_size, batch_size)
    options = {"batch_size": batch_size, "device": device, "tta": tta}
    options |= _given(tile_size=tile_size)
    if source.suffix.lower() == ".zarr" and target.suffix.lower() == ".zarr":
        denoise_zarr(
            load_model(model),
            source,
            target,
            scheduler=scheduler,
            workers=workers,
            resume=resume,
            noise_sigma=noise_sigma,
            **_given(chunk_size=chunk_size),
            **options,
        )
        typer.echo(f"wrote {target}: float32 OME-Zarr")
        return
    if scheduler is not None or workers is not None or chunk_size is not None:
        raise InputError(
            "--scheduler, --workers and --chunk-size apply to Zarr input and Zarr output only"
        )
    loaded = load_model(model)
    image = read_image(source)
    denoised = denoise(loaded, image, noise_sigma=noise_sigma, source=str(source), **options)
    write_image(target, denoised, inputs=(source, model))
    typer.echo(f"wrote {target}: {denoised.shape} float32")


@app.command("segment")
def segment_command(
    model: Model,
    source: Source,
    target: Target,
    probabilities: Annotated[
        bool, typer.Option(help="Write float32 foreground probabilities, not a 0/1 mask.")
    ] = False,
    instances: Annotated[
        bool,
        typer.Option(
            help="Write one integer per object (uint16/uint32, 0 background), touching "
            "objects apart; best with a segmenter trained with --target instances."
        ),
    ] = False,
    tile_size: TileSize = 1024,
    batch_size: WindowBatch = None,
    device: PredictDevice = "auto",
) -> None:
    """Segment an image or stack; writes a uint8 0/1 mask, or objects with --instances
    (a joint model segments its own denoised image)."""
    from semdenoise.io import load_model, read_image, write_image
    from semdenoise.predict import segment

    _refuse_overwrite(target, source, model)
    _check_prediction_options(tile_size, batch_size)
    loaded = load_model(model)
    image = read_image(source)
    mask = segment(
        loaded,
        image,
        probabilities=probabilities,
        instances=instances,
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        source=str(source),
    )
    write_image(target, mask, inputs=(source, model))
    typer.echo(f"wrote {target}: {mask.shape} {mask.dtype}")


def main() -> None:
    """Entry point: run the app, turning library errors into one line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        app(standalone_mode=False)
    except TrainingInterrupted as e:
        typer.echo(str(e), err=True)
        sys.exit(130)
    except SemdenoiseError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: unknown option, missing argument
        e.show()
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
