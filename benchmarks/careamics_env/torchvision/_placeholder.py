"""Names that exist so that ``from torchvision.X import NAME`` succeeds, and fail on use."""

from __future__ import annotations

from typing import Any


class Placeholder:
    """A stand-in for a torchvision object this venv does not provide."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{self.qualname} is not provided by the CAREamics benchmark's torchvision "
            "stand-in (benchmarks/careamics_env/torchvision); only center_crop is"
        )

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder(f"{self.qualname}.{name}")

    def __repr__(self) -> str:
        return f"<torchvision stand-in placeholder {self.qualname}>"


def module_getattr(module: str):
    """A module-level ``__getattr__`` (PEP 562) that hands out placeholders."""

    def __getattr__(name: str) -> Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder(f"{module}.{name}")

    return __getattr__
