"""The command line: each command a few lines over the library.

Errors a user can cause print one line, ``error: ...``, on stderr and exit with code 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from semdenoise.cli_check import check_command
from semdenoise.cli_evaluation import evaluate_command, reproduce_app, synth_command
from semdenoise.config import (
    DEFAULT_TILE_SIZE,
    MODE_BLIND_FILTER,
    PRESETS,
    SECTIONS,
    Settings,
    dump_settings,
    read_settings,
    resolve_settings,
)
from semdenoise.config import preset as named_preset
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


_PANELS = {
    "train": "Training (section train:)",
    "unet": "Network (section unet:)",
    "masking": "Masking (section masking:)",
    "joint": "Joint training (section joint:)",
    "seg": "Segmenter (section seg:)",
    "noise": "Noise model (section noise:)",
}


def _shown_default(field: str, default: Any) -> bool | str:
    """A field's default as ``--help`` shows it (flags as typer names them)."""
    if isinstance(default, bool):
        flag = field.replace("_", "-")
        return flag if default else f"no-{flag}"
    if default is None:
        return False
    return f"{default:g}" if isinstance(default, float) else str(default)


def _option(section: str, field: str, *names: str) -> Any:
    """The option of a config field. It defaults to None, so that only a value the user
    gave reaches the config and the field's default stays the only one (one source of
    truth); its help is the field's description and the default it shows, the field's.
    Flags (``--residual/--no-residual``) are tri-state for the same reason."""
    config = SECTIONS[section]
    return typer.Option(
        *names,
        help=_help(config, field),
        show_default=_shown_default(field, config.model_fields[field].get_default()),
        rich_help_panel=_PANELS[section],
    )


# Options shared by every training command (DESIGN.md: "same training flags").
Images = Annotated[Path, typer.Argument(help="Image, stack (TIFF/NPY/Zarr/PNG) or folder.")]
Out = Annotated[
    Path,
    typer.Option(
        "--out", help="Model file to write (.pt); its settings go beside it to MODEL.pt.yaml."
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file of settings by section (train:, unet:, masking:, joint:, seg:; a "
        "model's MODEL.pt.yaml repeats its run); options given here override it.",
    ),
]
Preset = Annotated[
    str | None,
    typer.Option(
        help=f"Named settings ({', '.join(PRESETS)}: docs/cli.md); --config and options "
        "given here override it."
    ),
]
Resume = Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")]
Progress = Annotated[bool, typer.Option(help="Show a progress bar.")]
AxesOption = Annotated[
    str | None,
    typer.Option(
        "--axes",
        help="The input's axes, one letter each of S (samples), T (time), C (channels), "
        "Z, Y, X, e.g. CYX or SCZYX (default: YX; a 3-D array is ZYX for a 3-D model, "
        "else a stack SYX; a model trained with --axes assumes them again).",
    ),
]
Labels = Annotated[
    Path,
    typer.Option(
        "--labels",
        help="Masks or label images matching IMAGES; a folder pairs with an IMAGES folder by "
        "file name, and images without a label file are unlabelled (partial labels).",
    ),
]
IgnoreLabel = Annotated[
    int | None,
    typer.Option(help="Label value marking unlabelled pixels (no segmentation loss there)."),
]
BackgroundLabel = Annotated[
    list[int] | None,
    typer.Option(
        "--background-label",
        help="Label value meaning background; repeat for several (default: 0). Every other "
        "value but --ignore-label is foreground (TRAILMAP: --ignore-label 0 "
        "--background-label 1 --background-label 3).",
    ),
]


def _background(values: list[int] | None) -> dict[str, tuple[int, ...]]:
    """The library's background_labels, only when given (its default is the one source)."""
    return {} if not values else {"background_labels": tuple(values)}


def _fields(section: str, *, without: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(field for field in SECTIONS[section].model_fields if field not in without)


_SET_BY_MODE = ("in_channels", "out_channels")  # each training mode sets its own

# The settings each training command takes, by section of a --config file; every one is
# an option too (tests/unit/test_cli_config.py checks both ways).
TRAIN_SETTINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "n2v": {
        "train": _fields("train"),
        "unet": _fields("unet", without=_SET_BY_MODE),
        "masking": _fields("masking"),
        "noise": _fields("noise"),
    },
    "seg": {
        "train": _fields("train"),
        "unet": _fields("unet", without=(*_SET_BY_MODE, "residual", "channels")),
        "seg": _fields("seg"),
    },
    "joint": {
        "train": _fields("train"),
        "unet": _fields("unet", without=_SET_BY_MODE),
        "masking": _fields("masking"),
        "joint": _fields("joint"),
    },
}

# Option names that are not their field's name (promised before the configs existed).
_OPTION_NAMES = {
    ("masking", "mode"): "masking",
    ("joint", "segment_target"): "target",
    ("noise", "model"): "noise_model",
    ("noise", "quantile"): "noise_quantile",
    ("noise", "estimate"): "noise_estimate",
}


def option_name(section: str, field: str) -> str:
    """The parameter of a training command that sets ``section.field``."""
    return _OPTION_NAMES.get((section, field), field)


def _given(**values: Any) -> dict[str, Any]:
    """Only the options the user set, so config defaults stay the single source of truth."""
    return {k: v for k, v in values.items() if v is not None}


def _refuse_overwrite(out: Path, *inputs: Path | None) -> None:
    from semdenoise.io.images import same_path

    for source in inputs:
        if source is not None and source.exists() and same_path(out, source):
            raise InputError(f"{out}: output would overwrite an input; choose another name")


def settings_path(out: Path) -> Path:
    """Where a model's resolved settings go: ``MODEL.pt.yaml`` beside ``MODEL.pt``."""
    return out.with_name(out.name + ".yaml")


def _settings(command: str, options: dict[str, Any]) -> dict[str, Any]:
    """The command's configs: field defaults < --preset < --config file < options given."""
    takes = TRAIN_SETTINGS[command]
    layers: list[tuple[str, Settings]] = []
    if options["preset"] is not None:
        name = options["preset"]
        values = named_preset(name)  # only what this command takes: --preset cpu suits them all
        chosen = {
            section: {k: v for k, v in values[section].items() if k in fields}
            for section, fields in takes.items()
            if section in values
        }
        layers.append((f"preset {name}: {{section}}", chosen))
    if options["config"] is not None:
        _refuse_overwrite(settings_path(options["out"]), options["config"])
        layers.append((f"{options['config']}: {{section}}", read_settings(options["config"])))
    given = {
        section: _given(**{field: options[option_name(section, field)] for field in fields})
        for section, fields in takes.items()
    }
    layers.append(("{section} options", given))
    configs = resolve_settings(takes, layers, command=f"train {command}")
    if command in MODE_BLIND_FILTER:  # resolved here, so MODEL.pt.yaml records what ran
        configs["unet"] = configs["unet"].with_blind_filter(MODE_BLIND_FILTER[command])
    return configs


def _save_settings(command: str, out: Path, configs: dict[str, Any]) -> Path:
    """Write the run's resolved settings beside the model, for ``--config`` to repeat it."""
    from semdenoise.io.atomic import atomic_path

    path = settings_path(out)
    with atomic_path(path) as tmp:
        tmp.write_text(dump_settings(configs, TRAIN_SETTINGS[command]))
    return path


def _report_trained(out: Path, model: Any, settings: Path) -> None:
    summary = model.training
    typer.echo(
        f"wrote {out}: {summary['steps']} steps in {summary['seconds']:.0f} s on "
        f"{summary['images']} image(s); settings in {settings.name}"
    )


def _option_type(annotation: Any) -> type:
    """The CLI type of a config field: a Literal's values' type, an optional's inner one."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(inner[0])
    return annotation


def _setting_parameters(command: str) -> list[inspect.Parameter]:
    """One keyword option per setting the command takes, generated from the config
    fields (TRAIN_SETTINGS), so no option list is written twice."""
    parameters = []
    for section, fields in TRAIN_SETTINGS[command].items():
        for field in fields:
            kind = _option_type(SECTIONS[section].model_fields[field].annotation)
            parameters.append(
                inspect.Parameter(
                    option_name(section, field),
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[kind | None, _option(section, field)],
                )
            )
    return parameters


# Options of every training command that are not settings: (name, annotation, default).
_RUN_OPTIONS = (
    ("config", ConfigFile, None),
    ("preset", Preset, None),
    ("resume", Resume, False),
    ("axes", AxesOption, None),
    ("progress", Progress, True),
)


def _train_command(command: str):
    """Register ``train COMMAND``: the function's own parameters (its inputs), the run
    options every training command has (--config, --preset, --resume, --axes,
    --progress) and the generated setting options; all options reach it as
    ``**options``."""

    def register(function):
        own = [
            p
            for p in inspect.signature(function, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        keyword = inspect.Parameter.KEYWORD_ONLY
        generated = [
            inspect.Parameter(name, keyword, default=default, annotation=annotation)
            for name, annotation, default in _RUN_OPTIONS
        ] + _setting_parameters(command)
        function.__signature__ = inspect.Signature([*own, *generated])
        function.__annotations__ = {
            **typing.get_type_hints(function, include_extras=True),
            **{p.name: p.annotation for p in generated},
        }
        return train_app.command(command)(function)

    return register


def _run(command: str, out: Path, options: dict[str, Any], *inputs: Path | None) -> tuple:
    """Refuse an output over an input, then the command's configs and its run options
    (axes, out, resume, progress) for the training call."""
    _refuse_overwrite(out, *inputs, options["config"])
    configs = _settings(command, {**options, "out": out})
    run = {"axes": options["axes"], "out": out, "resume": options["resume"]}
    return configs, run | {"progress": options["progress"]}


@_train_command("n2v")
def train_n2v_command(
    images: Images,
    out: Out,
    **options: Any,
) -> None:
    """Train a Noise2Void denoiser (grid masking on full images by default; --dims 3: a
    3-D network on (Z, Y, X) volumes, one per file)."""
    from semdenoise.training import train_n2v

    configs, run = _run("n2v", out, options, images)
    model = train_n2v(images, **configs, **run)
    _report_trained(out, model, _save_settings("n2v", out, configs))


@_train_command("seg")
def train_seg_command(
    images: Images,
    labels: Labels,
    out: Out,
    ignore_label: IgnoreLabel = None,
    background_label: BackgroundLabel = None,
    **options: Any,
) -> None:
    """Train a segmenter on images and their labels (any non-zero label is foreground;
    --target instances learns to separate touching objects; --dims 3: a 3-D segmenter on
    (Z, Y, X) volumes with label volumes of the same shape, sparse labels welcome)."""
    from semdenoise.training import train_seg

    configs, run = _run("seg", out, options, images, labels)
    model = train_seg(
        images,
        labels,
        unet=configs["unet"],
        loss=configs["seg"].loss,
        target=configs["seg"].target,
        ignore_label=ignore_label,
        **_background(background_label),
        train=configs["train"],
        **run,
    )
    _report_trained(out, model, _save_settings("seg", out, configs))


@_train_command("joint")
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
    ignore_label: IgnoreLabel = None,
    background_label: BackgroundLabel = None,
    style_segmenter: Annotated[
        Path | None,
        typer.Option(help="Segmenter of a related task, frozen: unsupervised mode (Eq. 4)."),
    ] = None,
    init: Annotated[Path | None, typer.Option(help="Start the denoiser from an N2V model.")] = None,
    **options: Any,
) -> None:
    """Train denoiser and segmenter end to end: with --labels (Eq. 3) or with a frozen
    --style-segmenter (Eq. 4); --dims 3: 3-D networks on (Z, Y, X) volumes."""
    from semdenoise.training import train_joint

    configs, run = _run("joint", out, options, images, labels, style_segmenter, init)
    model = train_joint(
        images,
        labels=labels,
        ignore_label=ignore_label,
        **_background(background_label),
        style_segmenter=style_segmenter,
        init=init,
        **configs,
        **run,
    )
    _report_trained(out, model, _save_settings("joint", out, configs))


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
            help=f"Largest window side fed to the network (default {DEFAULT_TILE_SIZE}; "
            "Zarr to Zarr: "
            "one window per chunk)."
        ),
    ] = None,
    batch_size: WindowBatch = None,
    device: PredictDevice = "auto",
    axes: AxesOption = None,
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
    posterior: Annotated[
        bool,
        typer.Option(
            help="A model with a learned noise model (train n2v --noise-model): combine "
            "its prediction with the observed pixel by the posterior mean; "
            "--no-posterior: its blind-spot prediction alone."
        ),
    ] = True,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Zarr to Zarr: 'threads' (default), or the address of a running "
            "dask.distributed scheduler, e.g. tcp://host:8786."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Zarr to Zarr: chunks worked on at once (default 2; 1 on one core)."),
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
    _check_prediction_options(DEFAULT_TILE_SIZE if tile_size is None else tile_size, batch_size)
    options = {"batch_size": batch_size, "device": device, "tta": tta, "posterior": posterior}
    options |= _given(tile_size=tile_size)
    if source.suffix.lower() == ".zarr" and target.suffix.lower() == ".zarr" and axes is None:
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
            + (" (with --axes, Zarr is denoised in memory)" if axes is not None else "")
        )
    loaded = load_model(model)
    image = read_image(source, axes=axes)
    denoised = denoise(
        loaded, image, axes=axes, noise_sigma=noise_sigma, source=str(source), **options
    )
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
    tile_size: TileSize = DEFAULT_TILE_SIZE,
    batch_size: WindowBatch = None,
    device: PredictDevice = "auto",
    axes: AxesOption = None,
) -> None:
    """Segment an image or stack; writes a uint8 0/1 mask, or objects with --instances
    (a joint model segments its own denoised image)."""
    from semdenoise.io import load_model, read_image, write_image
    from semdenoise.predict import segment

    _refuse_overwrite(target, source, model)
    _check_prediction_options(tile_size, batch_size)
    loaded = load_model(model)
    image = read_image(source, axes=axes)
    mask = segment(
        loaded,
        image,
        axes=axes,
        probabilities=probabilities,
        instances=instances,
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        source=str(source),
    )
    write_image(target, mask, inputs=(source, model))
    typer.echo(f"wrote {target}: {mask.shape} {mask.dtype}")


@app.command("export")
def export_command(
    model: Model,
    target: Annotated[Path, typer.Argument(metavar="OUT.zip", help="The package to write (.zip).")],
    sample: Annotated[
        Path | None,
        typer.Option(
            help="A real image to cut the package's test input from (a centred crop, "
            "256x256; 32x128x128 for a 3-D model); default: a synthetic plaques image "
            "scaled to the model's training intensities."
        ),
    ] = None,
    axes: AxesOption = None,
    name: Annotated[
        str | None, typer.Option(help="The package's name (default: from the model's kind).")
    ] = None,
) -> None:
    """Write a BioImage Model Zoo package (bioimageio format 0.5) of a model.

    A denoiser exports its denoised output, a segmenter its foreground probability, a
    joint model both, in one package. Needs `pip install 'semdenoise[export]'`.
    """
    from semdenoise.export import export_model

    _refuse_overwrite(target, model, sample)
    export_model(model, target, sample=sample, axes=axes, name=name)
    typer.echo(f"wrote {target}: bioimageio test {target.name} checks it")


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
