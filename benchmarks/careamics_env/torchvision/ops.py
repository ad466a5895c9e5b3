"""``torchvision.ops``: placeholders only (torchmetrics imports a few at import time)."""

from ._placeholder import module_getattr

__getattr__ = module_getattr(__name__)
