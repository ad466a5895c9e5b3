"""A trained model as a BioImage Model Zoo package (bioimageio model format 0.5).

One zip that bioimageio tools (``bioimageio test``/``predict``, deepImageJ, ilastik,
napari plugins) run without semdenoise: the network's weights twice (a PyTorch state
dict with its architecture file, and TorchScript), the normalisation as declared pre-
and postprocessing, a test input cut from a real image with the output this package
gives on it, a cover, a README and the paper to cite.

What the package reproduces of ``semdenoise denoise`` / ``segment --probabilities``:
their default output, normalised with the model's stored statistics and un-normalised
after (``fixed_zero_mean_unit_variance`` before, ``scale_linear`` after, both computed by
the bioimageio runner). For a denoiser that learned a noise model (the default of
``train n2v``) that is the posterior mean: the network inside the package runs the 16
blind-spot passes and combines their prior with the observed pixel, by the same code
(models/posterior.py) ``denoise`` runs. What it does not: test-time augmentation and
``--noise-sigma``.

A joint model exports as **one package with two outputs**, the denoised image and the
foreground probability of the segmenter run on it. One network, as it was trained
(paper §2.2, Eq. 3): the segmenter's input is the denoiser's normalised output, which
two linked packages could only pass through un-normalised files and a second
normalisation; one package runs both in one pass, and a user who wants only the
denoised image takes the first output.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tifffile
import torch
import yaml

from semdenoise.config import UNetConfig
from semdenoise.errors import DependencyError, InputError
from semdenoise.export.source import CALLABLE, FILE_NAME, architecture_source, unet_kwargs
from semdenoise.io.atomic import atomic_path
from semdenoise.models.posterior import blind_stride
from semdenoise.models.targets import BACKGROUND
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.denoise import (
    as_model,
    learned_noise_model,
    masking_radius,
    model_layout,
    residual_profiles,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = "0.5.12"  # the bioimageio model format bioimageio.spec 0.5.12 writes
INPUT = "noisy"
DENOISED = "denoised"
PROBABILITY = "foreground"
CROP_2D = 256  # test input side (Y, X) of a 2-D model
CROP_3D = (32, 128)  # test input (Z, Y/X) of a 3-D model: a few seconds on a CPU

# One source with CITATION.cff (tests/test_export.py checks they agree).
AUTHORS = [{"name": "the semdenoise developers"}]
LICENSE = "BSD-3-Clause"
PAPER = "Tianfang Zhu, Yue Guan. Joint Optical Neuroimaging Denoising with Semantic Tasks."
# The copy of the paper this project was built from names no venue or DOI: the link
# finds it by its title. Noise2Void is the denoiser's training (paper §2.1).
CITATIONS = [
    {
        "text": PAPER,
        "url": "https://scholar.google.com/scholar?q=%22Joint+Optical+Neuroimaging+"
        "Denoising+with+Semantic+Tasks%22",
    },
    {
        "text": "Alexander Krull, Tim-Oliver Buchholz, Florian Jug. Noise2Void - Learning "
        "Denoising from Single Noisy Images. CVPR 2019.",
        "url": "https://arxiv.org/abs/1811.10980",
    },
]


def export_model(
    model: TrainedModel | str | os.PathLike,
    out: str | os.PathLike,
    *,
    sample: np.ndarray | str | os.PathLike | None = None,
    axes: str | None = None,
    name: str | None = None,
) -> Path:
    """Write ``model`` as a BioImage Model Zoo package (zip, format 0.5) to ``out``.

    ``sample`` is the real image the package's test input is cut from (an array or an
    image file; a centred crop of 256x256, or 32x128x128 for a 3-D model, smaller when
    the image is); ``axes`` declares its layout as for ``denoise``. Without it, the
    test input is a synthetic plaques image (semdenoise.synth) scaled to the model's
    training mean and standard deviation. A denoiser exports one output, a segmenter
    its foreground probability, a joint model both (see the module's docstring for
    why one package, and what differs from ``semdenoise denoise``).

    The zip is written whole or not at all; returns its path. Needs the ``export``
    extra (``pip install semdenoise[export]``).
    """
    spec = _bioimageio()
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise InputError(f"{out}: a BioImage Model Zoo package is a .zip file")
    if not out.parent.exists():
        raise InputError(f"{out}: folder {out.parent} does not exist")
    source_name = "model" if isinstance(model, TrainedModel) else str(model)
    model = as_model(model)
    roles = exported_roles(model)
    if not roles:
        raise InputError(f"{source_name}: model of kind {model.kind!r} holds no network")
    config = model.networks[roles[0]].config
    spatial = _spatial_axes(model, roles)
    test_input, origin = _test_input(model, spatial, sample, axes)  # (C, [Z,] Y, X)
    with tempfile.TemporaryDirectory(prefix="semdenoise-export-") as folder:
        folder = Path(folder)
        rdf = _write_files(
            model,
            roles,
            spatial,
            test_input,
            folder,
            name=name or _default_name(model),
            origin=origin,
        )
        with warnings.catch_warnings():
            # bioimageio.spec leaves the files it hashes to the garbage collector
            warnings.simplefilter("ignore", ResourceWarning)
            descr = spec.load_description(rdf, perform_io_checks=True)
            if not isinstance(descr, spec.ModelDescr):
                _refuse(descr.validation_summary, name)
            with atomic_path(out) as tmp:
                spec.save_bioimageio_package(descr, output_path=tmp)
            del descr
            gc.collect()  # here, where its warnings are ignored
    logger.info(
        "exported %s (%d-D, %d channel(s)) to %s", model.kind, config.dims, config.in_channels, out
    )
    return out


def _refuse(summary: Any, name: str | None) -> None:
    """An invalid description: the user's --name (the one free text), else a bug."""
    errors = [e for detail in summary.details for e in detail.errors]
    if name is not None and any(e.loc and e.loc[0] == "name" for e in errors):
        first = next(e for e in errors if e.loc and e.loc[0] == "name")
        raise InputError(f"--name {name[:40]!r}: {first.msg}")
    raise RuntimeError(f"the package description is invalid:\n{summary.format()}")


def exported_roles(model: TrainedModel) -> list[str]:
    """The networks a package runs: the denoiser, and the segmenter of a segmenter-only
    or a joint model (only a joint model's segmenter was trained on denoised images)."""
    roles = [] if model.denoiser is None else ["denoiser"]
    if model.segmenter is not None and (not roles or model.kind == "joint"):
        roles.append("segmenter")
    return roles


def _bioimageio() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its import warns about optional packages
            import bioimageio.spec as spec
    except ImportError as e:
        raise DependencyError(
            "export needs bioimageio.spec: pip install 'semdenoise[export]'"
        ) from e
    return spec


def _default_name(model: TrainedModel) -> str:
    what = {"n2v": "Noise2Void denoiser", "seg": "segmenter", "joint": "joint denoiser"}
    return f"semdenoise {what.get(model.kind, model.kind)}"


# --- the test input ---------------------------------------------------------------


def _test_input(
    model: TrainedModel,
    spatial: list[SpatialAxis],
    sample: np.ndarray | str | os.PathLike | None,
    axes: str | None,
) -> tuple[np.ndarray, str]:
    """A centred crop (C, [Z,] Y, X) of the sample's first volume or middle plane,
    float32 in the input's units, each side a multiple of its step between the
    package's smallest size and the default crop; and where it comes from, in words."""
    dims = len(spatial)
    defaults = [CROP_2D] * 2 if dims == 2 else [CROP_3D[0], CROP_3D[1], CROP_3D[1]]
    sides = [max(side, axis.minimum) for side, axis in zip(defaults, spatial, strict=True)]
    if sample is None:
        image, source, described = _synthetic_sample(model, sides), "synthetic sample", ""
        layout_axes = "CZYX" if dims == 3 else "CYX"
    else:
        from semdenoise.io.checks import check_image
        from semdenoise.io.images import read_image

        if isinstance(sample, np.ndarray):
            source, described = "sample", "the image given at export"
            image = check_image(sample, source=source, axes=axes)
        else:
            source = str(sample)
            image = read_image(sample, axes=axes)
            described = Path(sample).name  # the package names no folder of this machine
        layout_axes = model_layout(model, image, axes, source=source).axes
    from semdenoise.io.axes import Layout

    data = Layout.of(image, layout_axes, source=source).canonical(image)[0]  # (C, Z, Y, X)
    if dims == 2:
        data = data[:, data.shape[1] // 2]  # the middle plane
    shape = data.shape[1:]
    if any(size < axis.minimum for size, axis in zip(shape, spatial, strict=True)):
        smallest = "x".join(str(axis.minimum) for axis in spatial)
        raise InputError(
            f"{source}: sample of {'x'.join(map(str, shape))} pixels is smaller than the "
            f"{smallest} this package's tiles need (two halos of context and one step)"
        )
    crop = []
    for size, side, axis in zip(shape, sides, spatial, strict=True):
        length = min(size, side) // axis.step * axis.step
        start = (size - length) // 2
        crop.append(slice(start, start + length))
    crop_shape = "x".join(str(c.stop - c.start) for c in crop)
    if sample is None:
        origin = (
            f"a synthetic plaques image of {crop_shape} pixels (semdenoise.synth), scaled "
            "to the training mean and standard deviation: no image was given at export"
        )
    else:
        origin = f"a centred {crop_shape} crop of {described}"
    return np.ascontiguousarray(data[(slice(None), *crop)], dtype=np.float32), origin


def _synthetic_sample(model: TrainedModel, shape: list[int]) -> np.ndarray:
    """A noisy synthetic plaques image (C, [Z,] Y, X), each channel scaled to the model's
    training mean and standard deviation, so it lies in the range the model knows."""
    from semdenoise.synth import DEFAULT_NOISE, add_poisson_gaussian, plaques_image

    means = np.reshape(model.normalization.mean, -1)
    stds = np.reshape(model.normalization.std, -1)
    rng = np.random.default_rng(0)
    noise = DEFAULT_NOISE["plaques"]
    channels = []
    for mean, std in zip(means, stds, strict=True):
        clean = plaques_image(tuple(shape), rng=rng).clean
        noisy = add_poisson_gaussian(
            clean, photons_per_unit=noise.photons_per_unit, read_sigma=noise.read_sigma, rng=rng
        )
        channels.append((noisy - noisy.mean()) / noisy.std() * std + mean)
    return np.stack(channels).astype(np.float32)


# --- the package's files -------------------------------------------------------------


def _write_files(
    model: TrainedModel,
    roles: list[str],
    spatial: list[SpatialAxis],
    test_input: np.ndarray,
    folder: Path,
    *,
    name: str,
    origin: str,
) -> Path:
    """Write every file of the package and its rdf.yaml into ``folder``; return the
    rdf.yaml's path."""
    kwargs: dict[str, Any] = {
        role: unet_kwargs(model.networks[role].config) if role in roles else None
        for role in ("denoiser", "segmenter")
    }
    kwargs["halos"] = {role: network_halo(model.networks[role].config) for role in roles}
    kwargs["background"] = BACKGROUND
    kwargs["posterior"] = posterior_kwargs(model, roles)
    (folder / FILE_NAME).write_text(architecture_source())
    network = _load_network(folder / FILE_NAME, kwargs)
    network.load_state_dict(_state_dict(model, kwargs))
    torch.save(network.state_dict(), folder / "weights.pt")
    network = _load_network(folder / FILE_NAME, kwargs)  # as bioimageio will build it
    network.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    network.eval()
    batch = torch.from_numpy(model.normalization.normalize(test_input))[None]
    with torch.no_grad():
        outputs = network(batch)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    _save_torchscript(network, batch, folder / "weights_torchscript.pt")

    names = [{"denoiser": DENOISED, "segmenter": PROBABILITY}[role] for role in roles]
    results = {}
    for output_name, output in zip(names, outputs, strict=True):
        values = output[0].numpy()
        if output_name == DENOISED:
            values = model.normalization.denormalize(values)
        results[output_name] = values
    results[INPUT] = test_input
    for tensor_name, values in results.items():  # (C, [Z,] Y, X) without the batch axis
        kind = "input" if tensor_name == INPUT else "output"
        np.save(folder / f"test_{kind}_{tensor_name}.npy", values[None])
        # the sample tensor, for people and viewers: a TIFF without singleton axes
        tifffile.imwrite(folder / f"sample_{kind}_{tensor_name}.tif", np.squeeze(values))
    del results[INPUT]
    _write_cover(folder / "cover.png", test_input, results)
    (folder / "README.md").write_text(_readme(model, name, roles, names, origin))
    description = _description(model, name, roles, spatial, kwargs, names)
    rdf = folder / "rdf.yaml"
    rdf.write_text(yaml.safe_dump(description, sort_keys=False))
    return rdf


def _state_dict(model: TrainedModel, kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = {}
    for role in ("denoiser", "segmenter"):
        if kwargs[role] is not None:
            net = model.networks[role]
            state |= {f"{role}.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
    return state


def _load_network(path: Path, kwargs: dict[str, Any]) -> torch.nn.Module:
    """The network from the package's architecture file, built as bioimageio builds it."""
    spec = importlib.util.spec_from_file_location(f"_semdenoise_export_{id(path)}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and torch look modules up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return getattr(module, CALLABLE)(**kwargs)


def _save_torchscript(network: torch.nn.Module, batch: torch.Tensor, path: Path) -> None:
    """TorchScript by tracing: valid for the sizes the package declares (multiples of
    the pooling steps, where the U-Net needs no padding)."""
    with warnings.catch_warnings():
        # trace is deprecated in favour of torch.export, which bioimageio does not load;
        # its warnings about Python booleans concern the padding branch, never taken at
        # the declared sizes
        warnings.simplefilter("ignore")
        with torch.no_grad():
            traced = torch.jit.trace(network, batch, check_trace=False)
        torch.jit.save(traced, str(path))


def _write_cover(path: Path, test_input: np.ndarray, results: dict[str, np.ndarray]) -> None:
    """Input | outputs, side by side (the middle slice of a volume, the first channel)."""
    from semdenoise.report.figures import save_panel

    def plane(image: np.ndarray) -> np.ndarray:
        image = image[0]
        return image[len(image) // 2] if image.ndim == 3 else image

    images, titles = [plane(test_input)], ["input"]
    low, high = np.percentile(images[0], [0.5, 99.5])
    for output_name, values in results.items():
        shown = plane(values)
        if output_name == PROBABILITY:  # probabilities 0..1 shown across the same range
            shown = low + shown * (high - low)
        images.append(shown)
        titles.append(output_name)
    save_panel(path, images, titles, display_range=(float(low), float(high)))


# --- rdf.yaml -------------------------------------------------------------------------


class SpatialAxis(NamedTuple):
    name: str  # "z", "y" or "x"
    step: int  # sizes the network runs on unpadded are multiples of it
    halo: int  # context to crop from each side of a tile
    minimum: int  # smallest size the package accepts


def _spatial_axes(model: TrainedModel, roles: list[str]) -> list[SpatialAxis]:
    """(axis, size step, halo, smallest size) of each spatial axis of the exported
    network, Z first.

    The step is the largest pooling multiple among the networks; the halo, the sum of
    the networks' contexts (they run one after the other, so their contexts add up),
    each rounded up to the pooling multiple as semdenoise's tiler pads, so tiles padded
    by it keep the sizes the network runs on unpadded. bioimageio needs the smallest
    tile to exceed its two halos: 2 * halo + one step.
    """
    configs = [model.networks[role].config for role in roles]
    dims = configs[0].dims
    names = ["z", "y", "x"][3 - dims :]
    halos = np.sum([context_halo(model, role) for role in roles], axis=0)
    steps = [max(c.size_multiple for c in configs)] * 2
    smallest = [max(c.min_size for c in configs)] * 2
    if dims == 3:
        steps.insert(0, max(c.z_multiple for c in configs))
        smallest.insert(0, max(c.min_size_z for c in configs))
    axes = []
    for name, step, halo, least in zip(names, steps, halos.tolist(), smallest, strict=True):
        minimum = _round_up(max(least, 2 * halo + step), step)
        axes.append(SpatialAxis(name, step, halo, minimum))
    return axes


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def network_halo(config: UNetConfig) -> list[int]:
    """The reflected margin ([Z,] Y, X) one network runs with: its receptive radius
    rounded up to its pooling multiple, as semdenoise's tiler pads (predict/tiling.py)."""
    halo = [_round_up(config.receptive_radius, config.size_multiple)] * 2
    if config.dims == 3:
        halo.insert(0, _round_up(config.receptive_radius_z, config.z_multiple))
    return halo


def context_halo(model: TrainedModel, role: str) -> list[int]:
    """The context ([Z,] Y, X) one network's output depends on, rounded up to its pooling
    multiple: its receptive radius, and for blind-spot passes the masking radius too
    (a masked pixel's median reaches that much further, in Y and X)."""
    config = model.networks[role].config
    halo = network_halo(config)
    posterior = posterior_kwargs(model, [role])
    if role == "denoiser" and posterior is not None:
        reach = config.receptive_radius + posterior["radius"]
        halo[-2:] = [_round_up(reach, config.size_multiple)] * 2
    return halo


def posterior_kwargs(model: TrainedModel, roles: list[str]) -> dict[str, Any] | None:
    """What the package's network needs for the posterior mean (YAML-safe): the noise
    model per channel, the masking radius and the pass grid's stride; ``None`` unless
    a denoiser that learned a noise model is exported alone (a joint model learns none)."""
    noise_models = learned_noise_model(model)
    if noise_models is None or roles != ["denoiser"]:
        return None
    radius = masking_radius(model)
    kwargs = {
        "offset": [float(m.offset) for m in noise_models],
        "slope": [float(m.slope) for m in noise_models],
        "radius": radius,
        "stride": blind_stride(radius),
    }
    profiles = residual_profiles(model)
    if profiles is not None:  # the weight's denominator, as denoise takes it
        # one (C, K) table: a channel with fewer bins repeats its last (flat beyond it)
        size = max(len(p.residuals) for p in profiles)
        for key, tables in (("residual_log_variances", 0), ("residual_levels", 1)):
            rows = [list(p.table[tables]) for p in profiles]
            kwargs[key] = [row + row[-1:] * (size - len(row)) for row in rows]
    return kwargs


def _description(
    model: TrainedModel,
    name: str,
    roles: list[str],
    spatial: list[SpatialAxis],
    kwargs: dict[str, Any],
    outputs: list[str],
) -> dict[str, Any]:
    channels = model.networks[roles[0]].config.in_channels
    channel_names = [f"channel{c}" for c in range(channels)]
    input_axes: list[dict[str, Any]] = [
        {"type": "batch"},
        {"type": "channel", "channel_names": channel_names},
    ]
    for axis in spatial:
        size = {"min": axis.minimum, "step": axis.step}
        input_axes.append({"type": "space", "id": axis.name, "size": size})

    def output_axes(names: list[str]) -> list[dict[str, Any]]:
        axes_: list[dict[str, Any]] = [
            {"type": "batch"},
            {"type": "channel", "channel_names": names},
        ]
        for axis in spatial:
            size = {"tensor_id": INPUT, "axis_id": axis.name}
            axes_.append({"type": "space", "id": axis.name, "size": size, "halo": axis.halo})
        return axes_

    mean, std = model.normalization.mean, model.normalization.std
    if channels == 1:
        normalize = {"mean": float(np.reshape(mean, -1)[0]), "std": float(np.reshape(std, -1)[0])}
        scale = {"gain": normalize["std"], "offset": normalize["mean"]}
    else:
        normalize = {"axis": "channel", "mean": list(mean), "std": list(std)}
        scale = {"axis": "channel", "gain": list(std), "offset": list(mean)}
    inputs = [
        {
            "id": INPUT,
            "description": "the noisy image, in its own intensity units (any number type; "
            "normalised with the training statistics inside)",
            "axes": input_axes,
            "test_tensor": {"source": f"test_input_{INPUT}.npy"},
            "sample_tensor": {"source": f"sample_input_{INPUT}.tif"},
            "data": {"type": "float32"},
            "preprocessing": [{"id": "fixed_zero_mean_unit_variance", "kwargs": normalize}],
        }
    ]
    output_descriptions = []
    for output_name in outputs:
        entry: dict[str, Any] = {"id": output_name}
        if output_name == DENOISED:
            entry |= {
                "description": "the denoised image, in the input's intensity units",
                "axes": output_axes(channel_names),
                "data": {"type": "float32"},
                "postprocessing": [{"id": "scale_linear", "kwargs": scale}],
            }
        else:
            entry |= {
                "description": "foreground probability, 0..1"
                + (" (of the segmenter run on the denoised image)" if len(outputs) > 1 else ""),
                "axes": output_axes(["foreground"]),
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        entry["test_tensor"] = {"source": f"test_output_{output_name}.npy"}
        entry["sample_tensor"] = {"source": f"sample_output_{output_name}.tif"}
        output_descriptions.append(entry)

    torch_version = torch.__version__.split("+")[0]
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": name,
        "description": _summary(model),
        "authors": AUTHORS,
        "cite": CITATIONS,
        "license": LICENSE,
        "documentation": {"source": "README.md"},
        "covers": [{"source": "cover.png"}],
        "tags": _tags(model),
        "attachments": [],
        "inputs": inputs,
        "outputs": output_descriptions,
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "architecture": {
                    "source": FILE_NAME,
                    "callable": CALLABLE,
                    "kwargs": kwargs,
                },
                "pytorch_version": torch_version,
            },
            "torchscript": {
                "source": "weights_torchscript.pt",
                "pytorch_version": torch_version,
                "parent": "pytorch_state_dict",
            },
        },
        "config": {"semdenoise": {"kind": model.kind, "training": _plain(model.training)}},
    }


def _summary(model: TrainedModel) -> str:
    return {
        "n2v": "Self-supervised (Noise2Void) denoiser trained with semdenoise.",
        "seg": "U-Net segmenter trained with semdenoise: foreground probability.",
        "joint": "Denoiser trained jointly with a segmenter (semdenoise, paper Eq. 3/4): "
        "the denoised image and the segmenter's foreground probability on it.",
    }.get(model.kind, f"semdenoise model of kind {model.kind}.")


def _tags(model: TrainedModel) -> list[str]:
    config = (model.denoiser or model.segmenter).config
    tags = ["pytorch", "unet", f"{config.dims}d", "semdenoise"]
    if model.denoiser is not None:
        tags += ["denoising", "noise2void", "self-supervised"]
    if model.segmenter is not None:
        tags += ["segmentation"]
    return tags


def _plain(value: Any) -> Any:
    """The training record as YAML takes it (tuples as lists, numbers as Python's)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


# --- README.md ----------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_number(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _readme(
    model: TrainedModel, name: str, roles: list[str], outputs: list[str], origin: str
) -> str:
    training = model.training
    config = (model.denoiser or model.segmenter).config
    train = training.get("train", {})
    lines = [
        f"# {name}",
        "",
        _summary(model),
        "",
        "## What it does",
        "",
    ]
    if DENOISED in outputs:
        lines.append(f"- `{DENOISED}`: the input denoised, float32 in the input's intensity units.")
    if PROBABILITY in outputs:
        lines.append(
            f"- `{PROBABILITY}`: the probability of foreground per pixel, 0..1"
            + (
                ", from the jointly trained segmenter run on the denoised image (one "
                "network, as trained: paper §2.2)."
                if len(outputs) > 1
                else "."
            )
        )
    lines += [
        "",
        f"A {config.dims}-D U-Net (depth {config.depth}, {config.base_channels} base "
        f"channels, {config.in_channels} input channel(s)). The input is normalised with "
        f"the training statistics ({model.normalization.describe()}): "
        "`fixed_zero_mean_unit_variance` before the network, `scale_linear` after it "
        "on the denoised image.",
        "",
    ]
    posterior = posterior_kwargs(model, roles)
    if posterior is not None:
        passes = posterior["stride"] ** 2
        lines += [
            "The model learned a noise model with the denoiser: the network predicts, "
            "for each pixel, a mean and a variance from its neighbourhood without its own "
            f"value ({passes} blind-spot passes: each hides one pixel in {passes} behind "
            "the median of its "
            f"{2 * posterior['radius'] + 1}x{2 * posterior['radius'] + 1} window), and "
            "combines them with the observed pixel into the posterior mean (Laine et al., "
            "NeurIPS 2019), inside the package. The noise variance, in normalised units, "
            "per channel: "
            + "; ".join(
                f"{offset:.4g}" + (f" + {slope:.4g} x signal" if slope else "")
                for offset, slope in zip(posterior["offset"], posterior["slope"], strict=True)
            )
            + ".",
            "",
        ]
    lines += [
        "## How it was trained",
        "",
        f"- semdenoise, training mode `{model.kind}`"
        + (f" ({training['mode']})" if "mode" in training else ""),
    ]
    for key, label in (("steps", "steps"), ("images", "training images")):
        if key in training:
            lines.append(f"- {label}: {training[key]}")
    if train:
        lines.append(
            f"- seed {train.get('seed')}, batch size {train.get('batch_size')}, "
            f"learning rate {train.get('learning_rate')}"
        )
    if "masking" in training:
        masking = training["masking"]
        lines.append(f"- blind-spot masking: {masking.get('mode')} (Noise2Void, paper §2.1)")
    if "weights" in training:
        lines.append(f"- loss weights w1, w2: {training['weights']}")
    lines += [
        "",
        "The full training record is in `rdf.yaml` under `config: semdenoise:`.",
        "",
        "## How to use it",
        "",
        "With bioimageio.core (`pip install bioimageio.core torch`):",
        "",
        "```",
        "bioimageio test this_package.zip",
        "bioimageio predict this_package.zip --inputs image.tif --outputs out_{output_id}.tif",
        "```",
        "",
        "or in any BioImage Model Zoo consumer (deepImageJ, ilastik, the napari plugins). "
        "On a whole image it gives what semdenoise gives with the original model file "
        "and its defaults (`semdenoise denoise MODEL.pt in.tif out.tif`"
        + (", `semdenoise segment --probabilities`" if PROBABILITY in outputs else "")
        + "), up to float rounding. A runner that pads the image itself (`bioimageio "
        "predict` mirrors it by the halo) gives the same inside the image and slightly "
        "different values within one halo of its edges.",
        "",
        "Tiles: sizes are multiples of "
        f"{config.size_multiple} in Y and X"
        + (f" and of {config.z_multiple} in Z" if config.dims == 3 else "")
        + "; the declared halo is the network's receptive radius"
        + (" plus the masking radius" if posterior is not None else "")
        + ".",
        "",
        "## Limitations",
        "",
        "- semdenoise's test-time augmentation (`--tta`) and `--noise-sigma` blending are "
        "not part of the package.",
    ]
    if posterior is not None:
        lines.append(
            f"- The posterior mean costs {posterior['stride'] ** 2} network passes per "
            "tile. `semdenoise denoise --no-posterior` (one pass, the network's mean "
            "prediction alone) has no counterpart in the package."
        )
    lines += [
        "- It knows the images it was trained on; on other microscopes, stains or noise "
        "levels, check its output against the input before relying on it.",
        "",
        "## Validation",
        "",
        f"The test input (`test_input_{INPUT}.npy`, also as a TIFF) is {origin}. Its "
        "outputs (`test_output_*.npy`) were computed at export by this package's "
        "network; `bioimageio test` checks that both weight formats reproduce them.",
    ]
    metrics = {**training.get("metrics", {})}
    if "blind_spot_mse" in training:
        metrics["blind-spot MSE on the training images (input units squared)"] = training[
            "blind_spot_mse"
        ]
    if metrics:
        lines += ["", "At the end of training:", ""]
        lines += [f"- {key}: {_number(value)}" for key, value in metrics.items()]
    lines += [
        "",
        "## Citation",
        "",
        f"- {PAPER}",
        "- semdenoise, the semdenoise developers (software, BSD-3-Clause).",
        f"- {CITATIONS[1]['text']}",
        "",
    ]
    return "\n".join(lines)
