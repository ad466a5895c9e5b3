"""The torchvision stand-in of the CAREamics benchmark venv (benchmarks/careamics_env):
loaded under another name, since it must never shadow a real torchvision here."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

STANDIN = Path(__file__).resolve().parents[2] / "benchmarks" / "careamics_env" / "torchvision"


@pytest.fixture(scope="module")
def standin():
    name = "careamics_torchvision_standin"
    spec = importlib.util.spec_from_file_location(
        name, STANDIN / "__init__.py", submodule_search_locations=[str(STANDIN)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def test_center_crop_offsets_like_torchvision(standin):
    center_crop = standin.transforms.functional.center_crop
    image = torch.arange(7 * 8, dtype=torch.float32).reshape(1, 1, 7, 8)
    cropped = center_crop(image, (4, 4))
    # top = round(3 / 2) = 2 (Python rounds half to even), left = round(4 / 2) = 2
    assert torch.equal(cropped, image[..., 2:6, 2:6])
    assert center_crop(image, 3).shape[-2:] == (3, 3)
    assert center_crop(image, [5]).shape[-2:] == (5, 5)


def test_center_crop_pads_with_zeros_when_larger(standin):
    image = torch.ones(2, 3, 3)
    padded = standin.transforms.functional.center_crop(image, (6, 5))
    assert padded.shape == (2, 6, 5)
    assert padded.sum() == image.sum()
    assert torch.equal(padded[:, 1:4, 1:4], image)  # extra row/column at the bottom/right


def test_other_names_import_and_fail_on_use(standin):
    resnet50 = standin.models.resnet50  # what torchmetrics imports at import time
    weights = standin.models.VGG16_Weights.DEFAULT
    with pytest.raises(NotImplementedError, match="stand-in"):
        resnet50()
    with pytest.raises(NotImplementedError):
        weights()
    with pytest.raises(NotImplementedError):
        standin.ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4))
    assert standin.__version__.endswith("standin")
