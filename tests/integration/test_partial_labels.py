"""Few labels and touching objects through the command line: a labels folder pairs with
the images by file name, unlabelled images train the denoiser only, and a segmenter
trained on instance targets writes one integer per object."""

import numpy as np
import tifffile
import torch

import semdenoise as sd
from semdenoise.training import train_seg

TRAIN = ("--steps", "4", "--depth", "2", "--base-channels", "4", "--no-progress")


def nuclei(rng: np.random.Generator, shape=(48, 48)) -> tuple[np.ndarray, np.ndarray]:
    """(noisy image, instance labels) of a few discs, two of them touching."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    centres = [(14, 12), (14, 26), (34, 30)]  # the first two touch
    for value, (cy, cx) in enumerate(centres, start=1):
        cy, cx = cy + rng.integers(-2, 3), cx + rng.integers(-2, 3)
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 < 49) & (labels == 0)] = value
    clean = 20 + 100 * (labels > 0)
    return (clean + rng.normal(0, 10, shape)).astype(np.float32), labels


def folders(tmp_path, labelled: tuple[str, ...]):
    rng = np.random.default_rng(0)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("a", "b", "c", "d"):
        image, label = nuclei(rng)
        tifffile.imwrite(images / f"{name}.tif", image)
        if name in labelled:
            tifffile.imwrite(labels / f"{name}.tif", label)
    return images, labels


def test_joint_with_one_labelled_image_of_four_trains_on_all_of_them(cli, tmp_path):
    images, labels = folders(tmp_path, labelled=("b",))
    out = tmp_path / "joint.pt"
    code, _, err = cli(
        "train", "joint", str(images), "--labels", str(labels), "--out", str(out),
        "--target", "instances", "--val-fraction", "0", *TRAIN,
    )  # fmt: skip
    assert code == 0, err
    model = sd.load_model(out)
    assert model.training["images"] == 4 and model.training["labelled_images"] == 1
    assert model.segmenter.config.out_channels == 3
    assert model.training["joint"]["segment_target"] == "instances"
    code, _, err = cli(
        "segment", str(out), str(images / "a.tif"), str(tmp_path / "a_objects.tif"), "--instances"
    )
    assert code == 0, err
    objects = tifffile.imread(tmp_path / "a_objects.tif")
    assert objects.dtype in (np.uint16, np.uint32) and objects.shape == (48, 48)


def test_labels_that_pair_with_no_image_or_with_nothing_are_refused(cli, tmp_path):
    images, labels = folders(tmp_path, labelled=("a",))
    tifffile.imwrite(labels / "zzz.tif", np.zeros((48, 48), np.uint8))
    code, _, err = cli(
        "train", "joint", str(images), "--labels", str(labels), "--out", str(tmp_path / "j.pt"),
        *TRAIN,
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {labels / 'zzz.tif'}: no image named 'zzz' in {images}")
    (labels / "zzz.tif").unlink()
    (labels / "a.tif").unlink()
    tifffile.imwrite(labels / "a.tif", np.zeros((40, 48), np.uint8))
    code, _, err = cli(
        "train", "seg", str(images), "--labels", str(labels), "--out", str(tmp_path / "s.pt"),
        *TRAIN,
    )  # fmt: skip
    assert code == 2 and "labels of shape (40, 48) do not match" in err, err
    assert not (tmp_path / "j.pt").exists() and not (tmp_path / "s.pt").exists()


def test_instances_need_cross_entropy_and_segment_cannot_write_both_outputs(cli, tmp_path):
    images, labels = folders(tmp_path, labelled=("a", "b", "c", "d"))
    code, _, err = cli(
        "train", "seg", str(images), "--labels", str(labels), "--out", str(tmp_path / "s.pt"),
        "--target", "instances", "--loss", "dice", *TRAIN,
    )  # fmt: skip
    assert code == 2 and err == (
        "error: loss 'dice': the instances target trains with cross-entropy (loss bce)\n"
    )
    out = tmp_path / "seg.pt"
    code, _, err = cli(
        "train", "seg", str(images), "--labels", str(labels), "--out", str(out), *TRAIN
    )
    assert code == 0, err
    code, _, err = cli(
        "segment", str(out), str(images / "a.tif"), str(tmp_path / "x.tif"),
        "--instances", "--probabilities",
    )  # fmt: skip
    assert code == 2 and err == "error: choose probabilities or instances, not both\n"
    assert not (tmp_path / "x.tif").exists()


def test_unlabelled_images_are_skipped_by_a_segmenter_exactly(tmp_path, tiny_unet):
    rng = np.random.default_rng(1)
    pairs = [nuclei(rng) for _ in range(3)]
    train = sd.TrainConfig(steps=3, val_fraction=0.0, seed=2)
    with_gap = train_seg(
        [p[0] for p in pairs], [pairs[0][1], None, pairs[2][1]], unet=tiny_unet, train=train
    )
    without = train_seg(
        [pairs[0][0], pairs[2][0]], [pairs[0][1], pairs[2][1]], unet=tiny_unet, train=train
    )
    gap, plain = with_gap.segmenter.state_dict(), without.segmenter.state_dict()
    assert all(torch.equal(gap[name], plain[name]) for name in plain)
    assert with_gap.training["images"] == 2


def test_instance_segmenter_learns_to_split_touching_nuclei(tmp_path, tiny_unet):
    """Trained long enough on instance targets, the segmenter separates the two touching
    discs that a foreground mask merges."""
    rng = np.random.default_rng(3)
    pairs = [nuclei(rng) for _ in range(8)]
    model = train_seg(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        unet=sd.UNetConfig(depth=2, base_channels=8),
        target="instances",
        train=sd.TrainConfig(steps=150, val_fraction=0.0, batch_size=4, learning_rate=3e-3),
    )
    image, truth = nuclei(np.random.default_rng(99))
    objects = sd.segment(model, image, instances=True)
    mask = sd.segment(model, image)
    assert objects.max() == 3, np.unique(objects)
    from scipy import ndimage

    assert ndimage.label(mask)[1] == 2  # the mask merges the touching pair
    for value in (1, 2, 3):
        inside = objects[truth == value]
        assert (inside == np.bincount(inside).argmax()).mean() > 0.8


def test_with_few_labels_a_share_of_the_steps_draws_only_labelled_images(tiny_unet):
    from semdenoise.config import JointConfig, MaskingConfig
    from semdenoise.training.joint import JointModule
    from semdenoise.training.loading import prepare_training_data
    from semdenoise.training.n2v import seeded_unet
    from semdenoise.training.sampling import label_planes

    rng = np.random.default_rng(0)
    pairs = [nuclei(rng) for _ in range(10)]
    labels = [pairs[0][1]] + [None] * 9
    data = prepare_training_data(
        [p[0] for p in pairs], labels, min_size=8, val_fraction=0.0, seed=0
    )
    assert data.labelled_count == 1 and data.labelled_bank.count == 1

    def labelled_batches(share: float) -> float:
        module = JointModule(
            seeded_unet(tiny_unet, 0),
            seeded_unet(tiny_unet.model_copy(update={"residual": False}), 1),
            supervised=True,
            joint=JointConfig(labelled_share=share, pretrain_fraction=0.0),
            masking=MaskingConfig(),
            train=sd.TrainConfig(steps=100, crop_size=16, batch_size=2),
            train_bank=data.train_bank,
            labelled_bank=data.labelled_bank,
        )
        module.generator = torch.Generator().manual_seed(0)

        def all_labelled(batch) -> bool:
            weight = label_planes(batch)[1]
            return weight is None or bool(weight.all())

        return np.mean([all_labelled(module.draw_batch()) for _ in range(200)])

    assert labelled_batches(1.0) == 1.0
    # share 0: batches of 2 crops from 10 images, one labelled: about (1/10)^2 of them
    assert labelled_batches(0.0) < 0.05
    assert 0.4 < labelled_batches(0.5) < 0.6


def test_evaluate_counts_touching_true_objects_apart(cli, tmp_path):
    rng = np.random.default_rng(5)
    clean = np.full((2, 48, 48), 20.0, np.float32)
    instances = np.zeros((2, 48, 48), np.uint16)
    instances[:, 10:30, 8:24], instances[:, 10:30, 24:40] = 1, 2  # two touching squares
    clean[instances > 0] = 120.0
    noisy = clean + rng.normal(0, 5, clean.shape).astype(np.float32)
    for name, array in (("clean", clean), ("noisy", noisy), ("instances", instances)):
        tifffile.imwrite(tmp_path / f"{name}.tif", array)
    tifffile.imwrite(tmp_path / "masks.tif", (instances > 0).astype(np.uint8))
    code, _, err = cli(
        "evaluate", "--noisy", str(tmp_path / "noisy.tif"), "--clean", str(tmp_path / "clean.tif"),
        "--labels", str(tmp_path / "masks.tif"), "--instances", str(tmp_path / "instances.tif"),
        "--baselines", "gaussian", "--out", str(tmp_path / "report"),
    )  # fmt: skip
    assert code == 0, err
    import json

    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    clean_row = next(r for r in summary if r["method"] == "clean")
    # 4 true objects (2 per image), not 2: Otsu's mask of the clean image merges each
    # pair, and the merged object matches one of the two at IoU exactly 0.5
    assert clean_row["objects"] == "2/4 (2 found)" and clean_row["AP"] == 0.5


def test_joint_segmenter_on_noisy_and_denoised_through_the_command_line(cli, tmp_path):
    images, labels = folders(tmp_path, labelled=("a", "c"))
    out = tmp_path / "joint.pt"
    code, _, err = cli(
        "train", "joint", str(images), "--labels", str(labels), "--out", str(out),
        "--target", "instances", "--segment-input", "both", "--val-fraction", "0", *TRAIN,
    )  # fmt: skip
    assert code == 0, err
    model = sd.load_model(out)
    assert model.segmenter_sees_noisy and model.segmenter.config.in_channels == 2
    objects = tmp_path / "b_objects.tif"
    code, _, err = cli("segment", str(out), str(images / "b.tif"), str(objects), "--instances")
    assert code == 0, err
    assert tifffile.imread(objects).shape == (48, 48)
