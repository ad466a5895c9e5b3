"""A stand-in for torchvision, only for the CAREamics benchmark venv.

Why: careamics 0.3.5 requires ``torchvision<=0.26.0``, whose wheels pin a torch older
than the 2.13.0 CPU build this benchmark runs both libraries on. careamics itself uses
two torchvision names: ``torchvision.__version__`` (written into BioImage Model Zoo
export metadata) and ``torchvision.transforms.functional.center_crop`` (LVAE/MicroSplit
code, not reached by Noise2Void). Both are implemented here with torch alone.

One more thing is needed: torchmetrics (imported by Lightning) sees that a module named
``torchvision`` exists and then, at import time, imports ``torchvision.models``
(``resnet50``, ``vgg16``, ``VGG16_Weights``), ``torchvision.ops`` (box IoU helpers) and
``torchvision.transforms``. Those names resolve to placeholders that raise
``NotImplementedError`` when used; nothing in CAREamics' N2V training or prediction
uses them.
"""

from . import models, ops, transforms

__version__ = "0.0.0+semdenoise.standin"
__all__ = ["models", "ops", "transforms"]
