import pickle

import numpy as np
import pytest
import torch

import semdenoise as sd
from semdenoise.errors import ModelFileError
from semdenoise.io.model_file import model_to_dict
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet


@pytest.fixture
def model(tiny_unet) -> TrainedModel:
    torch.manual_seed(0)
    return TrainedModel(
        kind="n2v",
        networks={"denoiser": UNet(tiny_unet).eval()},
        normalization=Normalization(mean=10.0, std=2.0),
        training={"steps": 3},
    )


def test_round_trip_gives_identical_predictions(tmp_path, model):
    sd.save_model(model, tmp_path / "m.pt")
    loaded = sd.load_model(tmp_path / "m.pt")
    image = np.random.default_rng(0).normal(10, 2, size=(24, 24)).astype(np.float32)
    np.testing.assert_array_equal(sd.denoise(model, image), sd.denoise(loaded, image))
    assert loaded.normalization == model.normalization and loaded.training == {"steps": 3}


def test_file_is_plain_data_for_weights_only_load(tmp_path, model):
    sd.save_model(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == "semdenoise-model"
    assert payload["networks"]["denoiser"]["config"]["residual"] is False


def test_a_file_from_before_the_blind_filter_loads_without_one(tmp_path, tiny_unet):
    """Files written before ``blind_filter`` existed lack the field: they had no filter,
    whatever train n2v's default is now."""
    torch.manual_seed(0)
    old = TrainedModel(
        kind="n2v",
        networks={"denoiser": UNet(tiny_unet.model_copy(update={"blind_filter": 0})).eval()},
        normalization=Normalization(mean=10.0, std=2.0),
    )
    payload = model_to_dict(old)
    del payload["networks"]["denoiser"]["config"]["blind_filter"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = sd.load_model(tmp_path / "old.pt")
    assert loaded.denoiser.config.blind_filter == 0 and not hasattr(loaded.denoiser, "blind_kernel")
    image = np.random.default_rng(0).normal(10, 2, size=(24, 24)).astype(np.float32)
    np.testing.assert_array_equal(sd.denoise(old, image), sd.denoise(loaded, image))


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_file_that_would_run_code_is_refused(tmp_path, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = model_to_dict(model)
    payload["training"] = {"evil": RunsCode()}
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError, match="could run code"):
        sd.load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_plain_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(RunsCode()))
    with pytest.raises(ModelFileError):
        sd.load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_truncated_foreign_and_incompatible_files(tmp_path, model):
    sd.save_model(model, tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or foreign"):
        sd.load_model(tmp_path / "cut.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a semdenoise model"):
        sd.load_model(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelFileError, match="truncated or foreign"):
        sd.load_model(tmp_path / "text.pt")
    payload = model_to_dict(model)
    payload["networks"]["denoiser"]["config"]["base_channels"] = 8
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ModelFileError, match="incompatible model file"):
        sd.load_model(tmp_path / "mismatch.pt")
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="version 99"):
        sd.load_model(tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="no such model file"):
        sd.load_model(tmp_path / "absent.pt")


def test_tta_keeps_the_shape_and_inverts_each_symmetry(model):
    image = np.random.default_rng(1).normal(10, 2, size=(20, 28)).astype(np.float32)
    averaged = sd.denoise(model, image, tta=True)
    assert averaged.shape == image.shape
    from semdenoise.predict.denoise import _symmetry, _symmetry_inverse

    for k in range(8):
        np.testing.assert_array_equal(_symmetry_inverse(_symmetry(image, k), k), image)


def test_known_noise_blend_weight_follows_the_stored_blind_spot_error(model):
    from semdenoise.predict.denoise import center_weight

    model.training["blind_spot_mse"] = 100.0
    assert center_weight(model, 5.0) == pytest.approx(0.75)
    assert center_weight(model, 20.0) == 0.0
    image = np.random.default_rng(2).normal(10, 2, size=(16, 16)).astype(np.float32)
    np.testing.assert_allclose(sd.denoise(model, image, noise_sigma=0.0), image, rtol=1e-6)
    with pytest.raises(sd.InputError, match="noise sigma must be"):
        sd.denoise(model, image, noise_sigma=-1.0)
    del model.training["blind_spot_mse"]
    with pytest.raises(sd.InputError, match="no stored blind-spot error"):
        sd.denoise(model, image, noise_sigma=1.0)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (MemoryError(), "not enough memory to read it"),
        (OSError(116, "Stale file handle"), "cannot read it: Stale file handle"),
    ],
)
def test_system_failures_are_not_called_truncated_or_foreign(
    tmp_path, model, monkeypatch, failure, message
):
    sd.save_model(model, tmp_path / "m.pt")

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(ModelFileError, match=f"m.pt: {message} \\(reading the model file\\)"):
        sd.load_model(tmp_path / "m.pt")
