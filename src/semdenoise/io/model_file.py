"""The model file: one ``.pt`` that loads with ``torch.load(weights_only=True)``.

It is a plain dict of tensors and primitives — weights, architecture configs,
normalisation and training provenance — so loading it never runs code. Lightning
checkpoints are for resuming only; this is the product.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from semdenoise.config import UNetConfig
from semdenoise.errors import InputError, ModelFileError, system_failure
from semdenoise.io.atomic import atomic_path
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet

FORMAT = "semdenoise-model"
FORMAT_VERSION = 1


def model_to_dict(model: TrainedModel) -> dict[str, Any]:
    """The model as a plain dict: what the file holds."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "networks": {
            role: {
                "config": net.config.model_dump(),
                "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            }
            for role, net in model.networks.items()
        },
        "normalization": model.normalization.to_dict(),
        "training": model.training,
    }


def save_model(model: TrainedModel, path: str | os.PathLike) -> None:
    """Write the model file atomically (temporary name, then rename)."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    with atomic_path(path) as tmp:
        torch.save(model_to_dict(model), tmp)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    return load_plain_data(path, what="model file")


def load_plain_data(path: Path, *, what: str) -> Any:
    """``torch.load(weights_only=True)``, its failures as one-line ModelFileErrors.

    weights_only refuses any object that is not a tensor or a primitive; a file that
    names a global (a class, a function such as ``os.system``) is refused as unsafe,
    anything else that fails is truncated or foreign bytes.
    """
    try:
        with warnings.catch_warnings():  # torch warns about legacy files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # "Unsupported global", "unsupported GLOBAL"
            raise ModelFileError(
                f"{path}: refused: the {what} holds objects other than weights "
                "(it could run code on load)"
            ) from e
        raise ModelFileError(f"{path}: not a readable {what} (truncated or foreign)") from e
    except Exception as e:  # truncated or foreign bytes fail in many ways inside torch
        failure = system_failure(e)
        if failure is not None:  # the file may be fine: say what really happened
            raise ModelFileError(f"{path}: {failure} (reading the {what})") from e
        raise ModelFileError(f"{path}: not a readable {what} (truncated or foreign)") from e


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Load a model file; any problem is a one-line ModelFileError naming the file."""
    path = Path(path)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a semdenoise model file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file version {payload.get('format_version')!r}, this semdenoise "
            f"reads version {FORMAT_VERSION}"
        )
    try:
        networks = {}
        for role, entry in payload["networks"].items():
            # a file from before the blind-spot blur has no such field: it had none
            net = UNet(UNetConfig(**{"blind_filter": 0, **entry["config"]}))
            net.load_state_dict(entry["state_dict"])
            networks[role] = net.eval()
        normalization = Normalization(**payload["normalization"])
        return TrainedModel(
            kind=str(payload["kind"]),
            networks=networks,
            normalization=normalization,
            training=payload.get("training", {}),
        )
    except (KeyError, TypeError, ValidationError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{path}: incompatible model file: {reason}") from e
