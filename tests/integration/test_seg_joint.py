import numpy as np
import pytest
import torch

import semdenoise as sd
from semdenoise.errors import InputError, ModelFileError
from semdenoise.training.joint import JointModule

QUICK = sd.TrainConfig(steps=6, batch_size=2, val_fraction=0.0)


@pytest.fixture
def labelled(noisy_stack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clean, noisy = noisy_stack
    masks = (clean > np.percentile(clean, 80)).astype(np.uint8)
    return clean, noisy, masks


def test_segmenter_learns_a_bright_foreground(labelled):
    _, noisy, masks = labelled
    model = sd.train_seg(
        noisy,
        masks * 7,  # label images: any non-zero is foreground
        unet=sd.UNetConfig(depth=2, base_channels=8),
        train=sd.TrainConfig(steps=120, batch_size=3, learning_rate=3e-3, val_fraction=0.0),
    )
    assert model.kind == "seg" and model.denoiser is None
    assert not model.segmenter.config.residual
    predicted = sd.segment(model, noisy)
    assert predicted.dtype == np.uint8 and set(np.unique(predicted)) <= {0, 1}
    from semdenoise.evaluation.metrics import foreground_iou

    assert foreground_iou(masks, predicted) > 0.5
    probabilities = sd.segment(model, noisy[0], probabilities=True)
    assert (
        probabilities.dtype == np.float32 and 0 <= probabilities.min() <= probabilities.max() <= 1
    )


@pytest.mark.parametrize("loss", ["dice", "bce+dice", "mse"])
def test_other_segmentation_losses_train(labelled, tiny_unet, loss):
    _, noisy, masks = labelled
    model = sd.train_seg(noisy, masks, unet=tiny_unet, loss=loss, train=QUICK)
    assert model.training["loss"] == loss


def test_labels_must_match_images(labelled, tiny_unet, tmp_path):
    _, noisy, masks = labelled
    with pytest.raises(InputError, match="2 label slice.* for 3 image slice"):
        sd.train_seg(noisy, masks[:2], unet=tiny_unet, train=QUICK, out=tmp_path / "s.pt")
    with pytest.raises(InputError, match=r"labels of shape \(48, 39\) do not match"):
        sd.train_seg(noisy, masks[:, :, :39], unet=tiny_unet, train=QUICK, out=tmp_path / "s.pt")
    assert not (tmp_path / "s.pt").exists()


def test_supervised_joint_updates_both_networks_and_segments_its_denoised_image(
    labelled, tiny_unet, tmp_path
):
    from semdenoise.training.n2v import seeded_unet

    _, noisy, masks = labelled
    out = tmp_path / "joint.pt"
    train = sd.TrainConfig(steps=10, batch_size=2, val_fraction=0.34, val_every=5)
    model = sd.train_joint(noisy, labels=masks, unet=tiny_unet, train=train, out=out)
    # both networks start from their seeded initial weights; both moved, every layer
    seg_config = tiny_unet.model_copy(update={"residual": False, "blind_filter": 0})
    initial = {
        "denoiser": seeded_unet(tiny_unet, train.seed),
        "segmenter": seeded_unet(seg_config, train.seed + 1),
    }
    for role, start in initial.items():
        trained = dict(model.networks[role].named_parameters())
        for name, value in start.named_parameters():
            assert not torch.equal(value, trained[name]), (role, name)
    record = torch.load(out, weights_only=True)
    assert record["kind"] == "joint" and set(record["networks"]) == {"denoiser", "segmenter"}
    assert record["training"]["mode"] == "supervised"
    assert record["training"]["weights"] == [1.0, 1.5]
    assert np.isfinite(record["training"]["metrics"]["val_seg"])
    assert sd.denoise(out, noisy).shape == noisy.shape
    assert sd.segment(out, noisy[0]).shape == noisy[0].shape
    assert model.denoiser.config.residual == sd.UNetConfig().residual


def test_joint_can_start_from_an_n2v_model(labelled, tiny_unet, tmp_path):
    _, noisy, masks = labelled
    n2v = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK)
    joint = sd.train_joint(noisy, labels=masks, init=n2v, train=QUICK)
    assert joint.normalization == n2v.normalization
    assert joint.training["initialised_from_n2v"]


def test_unsupervised_joint_keeps_the_style_segmenter_frozen(labelled, tiny_unet):
    _, noisy, masks = labelled
    style = sd.train_seg(noisy, masks, unet=tiny_unet, loss="mse", train=QUICK)
    before = {k: v.clone() for k, v in style.segmenter.state_dict().items()}
    joint = sd.train_joint(
        noisy,
        style_segmenter=style,
        unet=tiny_unet,
        train=sd.TrainConfig(steps=8, batch_size=2, val_fraction=0.34, val_every=4),
    )
    after = joint.segmenter.state_dict()
    for name, value in before.items():  # weights and BatchNorm running statistics
        assert torch.equal(value, after[name]), name
    assert joint.training["mode"] == "unsupervised" and joint.training["weights"] == [9.0, 1.0]


def test_style_gradient_option_reaches_the_denoiser_through_the_segmenter(labelled, tiny_unet):
    _, noisy, masks = labelled
    style = sd.train_seg(noisy, masks, unet=tiny_unet, loss="mse", train=QUICK)
    bank = sd.training.sampling.ImageBank.from_arrays([noisy[0] / noisy.std()])
    grads = {}
    for flag in (False, True):
        torch.manual_seed(0)
        denoiser = sd.models.UNet(tiny_unet)
        module = JointModule(
            denoiser,
            style.segmenter,
            supervised=False,
            joint=sd.JointConfig(style_gradient=flag),
            masking=sd.MaskingConfig(),
            train=QUICK,
            train_bank=bank,
        )
        module.style_term(denoiser(bank.stacks[0])).backward()
        grads[flag] = denoiser.head.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])


def test_joint_needs_exactly_one_guide_and_a_real_segmenter(labelled, tiny_unet, tmp_path):
    _, noisy, masks = labelled
    with pytest.raises(InputError, match="either labels"):
        sd.train_joint(noisy, train=QUICK)
    n2v = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK, out=tmp_path / "n2v.pt")
    with pytest.raises(InputError, match="holds no segmenter"):
        sd.train_joint(noisy, style_segmenter=tmp_path / "n2v.pt", train=QUICK)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelFileError):
        sd.train_joint(noisy, style_segmenter=tmp_path / "junk.pt", train=QUICK)
    with pytest.raises(InputError, match="holds no segmenter"):
        sd.segment(n2v, noisy[0])


@pytest.mark.parametrize("pretrain_denoiser", [False, True])
def test_pretraining_moves_the_denoiser_only_when_asked(labelled, tiny_unet, pretrain_denoiser):
    from semdenoise.training.n2v import seeded_unet

    _, noisy, masks = labelled
    joint = sd.JointConfig(pretrain_fraction=0.99, pretrain_denoiser=pretrain_denoiser)
    model = sd.train_joint(noisy, labels=masks, unet=tiny_unet, joint=joint, train=QUICK)
    untrained = seeded_unet(tiny_unet, QUICK.seed).state_dict()
    moved = any(
        not torch.equal(value, untrained[name])
        for name, value in model.denoiser.state_dict().items()
        if "num_batches" not in name
    )
    assert moved == pretrain_denoiser


def state_of(net: torch.nn.Module) -> dict[str, object]:
    """Everything training could change in a network: values, trainability, mode."""
    return {
        "state": {k: v.clone() for k, v in net.state_dict().items()},
        "requires_grad": [p.requires_grad for p in net.parameters()],
        "training": [m.training for m in net.modules()],
    }


def assert_same_state(net: torch.nn.Module, before: dict[str, object]) -> None:
    after = state_of(net)
    assert after["requires_grad"] == before["requires_grad"]
    assert after["training"] == before["training"]
    for name, value in before["state"].items():
        assert torch.equal(value, after["state"][name]), name


def test_train_joint_never_changes_the_models_it_is_given(labelled, tiny_unet):
    _, noisy, masks = labelled
    n2v = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK)
    style = sd.train_seg(noisy, masks, unet=tiny_unet, loss="mse", train=QUICK)
    n2v_before, style_before = state_of(n2v.denoiser), state_of(style.segmenter)
    supervised = sd.train_joint(noisy, labels=masks, init=n2v, train=QUICK)
    assert_same_state(n2v.denoiser, n2v_before)  # it used to train this one in place
    assert supervised.denoiser is not n2v.denoiser
    unsupervised = sd.train_joint(noisy, style_segmenter=style, init=n2v, train=QUICK)
    assert_same_state(style.segmenter, style_before)  # it used to freeze this one
    assert_same_state(n2v.denoiser, n2v_before)
    assert unsupervised.segmenter is not style.segmenter
    # the caller's style segmenter can still be trained further by the caller
    assert all(p.requires_grad for p in style.segmenter.parameters())


def test_a_segmenter_that_sees_noisy_and_denoised_is_what_segment_runs(labelled, tiny_unet):
    """``segment_input="both"``: the segmenter takes the noisy and the denoised image as
    channels, in training and in ``segment``; the style mode (no labels) refuses it."""
    _, noisy, masks = labelled
    joint = sd.JointConfig(segment_input="both")
    model = sd.train_joint(noisy, labels=masks, unet=tiny_unet, joint=joint, train=QUICK)
    assert model.segmenter_sees_noisy and model.segmenter.config.in_channels == 2
    assert model.training["joint"]["segment_input"] == "both"
    from scipy.special import expit

    from semdenoise.predict.tiling import predict_tiled

    x = model.normalization.normalize(noisy[0])
    denoised = predict_tiled(model.denoiser, x)
    expected = expit(predict_tiled(model.segmenter, np.stack([x, denoised])))
    # what the segmenter gives when shown the noisy image twice instead
    wrong = expit(predict_tiled(model.segmenter, np.stack([x, x])))
    probabilities = sd.segment(model, noisy[0], probabilities=True)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert np.abs(probabilities - wrong).max() > 1e-4
    with pytest.raises(InputError, match="segment-input both needs labels"):
        sd.train_joint(noisy, style_segmenter="style.pt", joint=joint, unet=tiny_unet)
