"""``torchvision.transforms``: ``functional.center_crop``; any other name a placeholder."""

from .._placeholder import module_getattr
from . import functional

__all__ = ["functional"]
__getattr__ = module_getattr(__name__)
