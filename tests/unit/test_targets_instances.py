"""Partial labels, ignored pixels and instance targets: what the segmentation loss sees,
and objects apart where a mask merges them."""

import numpy as np
import pytest
import torch

from semdenoise.errors import InputError
from semdenoise.models.targets import encode_labels, instance_classes
from semdenoise.predict.instances import instances_from_classes, instances_from_mask
from semdenoise.training.losses import segmentation_loss


def two_touching_squares() -> np.ndarray:
    labels = np.zeros((8, 8), int)
    labels[1:4, 1:4] = 7
    labels[1:4, 4:7] = 9
    return labels


def test_instance_classes_mark_where_objects_meet_as_boundary():
    classes = instance_classes(two_touching_squares()).astype(int)
    expected = np.zeros((8, 8), int)
    expected[1:4, 1:7] = 2
    expected[2, 2] = expected[2, 5] = 1  # the only pixels with no other label around
    np.testing.assert_array_equal(classes, expected)
    # a 0/1 mask cannot tell the two apart: one object, boundary only on its outline
    mask_classes = instance_classes(two_touching_squares() > 0).astype(int)
    assert (mask_classes[2, 2:6] == 1).all()


def test_negative_instance_labels_are_refused_unless_ignored():
    labels = np.array([[0, 1, -1], [2, 2, -1]])
    with pytest.raises(InputError, match=r"^lab\.tif: negative label -1; .*--ignore-label"):
        encode_labels(labels, labels.shape, target="instances", source="lab.tif")
    target, weight = encode_labels(labels, labels.shape, target="instances", ignore_label=-1)
    assert weight[:, 2].sum() == 0 and set(np.unique(target)) == {0, 2}


def test_unlabelled_images_and_ignored_pixels_weigh_nothing():
    target, weight = encode_labels(None, (4, 5))
    assert target.shape == weight.shape == (4, 5) and not weight.any()
    labels = np.array([[0, 1, 255], [1, 0, 255]])
    target, weight = encode_labels(labels, labels.shape, ignore_label=255)
    np.testing.assert_array_equal(target, [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(weight, [[1, 1, 0], [1, 1, 0]])


@pytest.mark.parametrize("kind", ["bce", "dice", "bce+dice", "mse"])
def test_the_loss_is_that_of_the_labelled_pixels_alone(kind):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 6, 6, generator=generator, requires_grad=True)
    labels = (torch.rand(1, 1, 6, 6, generator=generator) > 0.5).float()
    weight = torch.ones(1, 1, 6, 6)
    weight[..., 3:] = 0
    # whatever the unlabelled half says, the loss is that of the labelled half
    other = labels.clone()
    other[..., 3:] = 1 - other[..., 3:]
    loss = segmentation_loss(logits, labels, kind, weight)
    assert loss.item() == pytest.approx(segmentation_loss(logits, other, kind, weight).item())
    if kind != "dice":  # a mean over pixels: the same as scoring the labelled half alone
        alone = segmentation_loss(logits[..., :3], labels[..., :3], kind)
        assert loss.item() == pytest.approx(alone.item(), rel=1e-6)
    loss.backward()
    assert logits.grad[..., 3:].abs().max() == 0 and logits.grad[..., :3].abs().max() > 0


def test_a_batch_without_labels_adds_nothing_and_three_classes_train_with_cross_entropy():
    logits = torch.randn(2, 3, 5, 5, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 5, 5)).float()
    loss = segmentation_loss(logits, labels, "bce", torch.zeros(2, 1, 5, 5))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.abs().max() == 0
    full = segmentation_loss(logits, labels, "bce")
    expected = torch.nn.functional.cross_entropy(logits, labels[:, 0].long())
    assert full.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="3-class segmenter trains with bce"):
        segmentation_loss(logits, labels, "dice")


def touching_discs(shape=(40, 60)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    left = (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2
    right = (yy - 20) ** 2 + (xx - 40) ** 2 < 12**2
    return np.where(left, 1, np.where(right, 2, 0))


def test_a_mask_of_two_touching_discs_splits_at_the_neck():
    truth = touching_discs()
    objects = instances_from_mask(truth > 0)
    assert objects.dtype == np.uint16 and objects.max() == 2
    for value in (1, 2):  # each true disc is (almost all) one predicted object
        inside = objects[truth == value]
        share = np.bincount(inside).max() / inside.size
        assert share > 0.95
    assert (objects[truth == 0] == 0).all()


def test_interior_seeds_grow_over_the_boundary_to_whole_objects():
    truth = touching_discs()
    classes = instance_classes(truth).astype(int)
    probabilities = np.stack([(classes == c).astype(np.float32) for c in range(3)])
    probabilities = 0.8 * probabilities + 0.2 / 3  # confident, not certain
    objects = instances_from_classes(probabilities)
    assert objects.max() == 2
    for value in (1, 2):
        inside = objects[truth == value]
        assert np.bincount(inside).argmax() > 0 and (inside == inside[0]).mean() > 0.97
    np.testing.assert_array_equal(objects > 0, truth > 0)
