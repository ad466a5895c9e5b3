"""Synthetic plaques and somata: seeded, labelled consistently, 2-D and ZYX, noise as stated."""

import json

import numpy as np
import pytest

from semdenoise.errors import InputError
from semdenoise.synth import NoiseSettings, add_poisson_gaussian, make_set, plaques_image
from semdenoise.synth.files import write_set


@pytest.mark.parametrize("task", ["plaques", "somata"])
def test_sets_are_seeded_and_labels_agree_with_masks(task):
    first = make_set(task, 2, size=64, seed=3)
    again = make_set(task, 2, size=64, seed=3)
    np.testing.assert_array_equal(first.noisy, again.noisy)
    assert first.clean.shape == first.noisy.shape == first.masks.shape == (2, 64, 64)
    np.testing.assert_array_equal(first.instances > 0, first.masks == 1)
    assert first.instances.max() >= 1
    # targets are brighter than what surrounds them, in the clean image
    assert first.clean[first.masks == 1].mean() > first.clean[first.masks == 0].mean()
    other = make_set(task, 2, size=64, seed=4)
    assert not np.array_equal(first.clean, other.clean)


def test_image_i_does_not_depend_on_how_many_are_asked_for():
    three = make_set("plaques", 3, size=48, seed=1)
    third = make_set("plaques", 1, size=48, seed=1, first=2)
    np.testing.assert_array_equal(three.noisy[2], third.noisy[0])
    np.testing.assert_array_equal(three.instances[2], third.instances[0])


def test_stacks_are_zyx_volumes_with_3d_objects():
    volume = plaques_image((12, 64, 64), rng=np.random.default_rng(0))
    assert volume.clean.shape == volume.instances.shape == (12, 64, 64)
    labelled = make_set("plaques", 2, size=48, depth=6, seed=0)
    assert labelled.noisy.shape == (2, 6, 48, 48)
    # an object spans more than one slice (ellipsoids, z spacing 3 px)
    counts = [
        np.unique(np.nonzero(volume.instances == k)[0]).size
        for k in range(1, volume.instances.max() + 1)
    ]
    assert max(counts) > 1


def test_noisier_task_is_noisier():
    plaques = make_set("plaques", 1, size=64, seed=0)
    somata = make_set("somata", 1, size=64, seed=0)
    assert np.std(plaques.noisy - plaques.clean) > np.std(somata.noisy - somata.clean)


def test_correlated_noise_keeps_its_variance_and_correlates_neighbours():
    clean = np.full((256, 256), 40.0, np.float32)
    rng = np.random.default_rng(0)
    white = add_poisson_gaussian(clean, photons_per_unit=1.0, read_sigma=3.0, rng=rng) - clean
    rng = np.random.default_rng(0)
    correlated = (
        add_poisson_gaussian(clean, photons_per_unit=1.0, read_sigma=3.0, rng=rng, correlation=1.5)
        - clean
    )
    assert correlated.var() == pytest.approx(white.var(), rel=0.15)  # 40 + 9
    neighbour = np.corrcoef(correlated[:, 1:].ravel(), correlated[:, :-1].ravel())[0, 1]
    white_neighbour = np.corrcoef(white[:, 1:].ravel(), white[:, :-1].ravel())[0, 1]
    assert neighbour > 0.5 and abs(white_neighbour) < 0.05


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown task"):
        make_set("mitochondria", 1)
    with pytest.raises(ValueError, match="shape"):
        plaques_image((8, 8), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="photons"):
        make_set("plaques", 1, size=32, noise=NoiseSettings(photons_per_unit=0, read_sigma=1))


def test_write_set_writes_the_stacks_and_what_made_them(tmp_path):
    images = write_set("somata", tmp_path / "data", n=2, size=32, seed=5, read_sigma=1.0)
    written = {p.name for p in (tmp_path / "data").iterdir()}
    assert written == {"clean.tif", "noisy.tif", "masks.tif", "instances.tif", "meta.json"}
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert meta["noise"] == {"photons_per_unit": 1.0, "read_sigma": 1.0, "correlation": 0.0}
    assert meta["data_range"] == images.data_range and meta["seed"] == 5


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        ("mitochondria", {}, "unknown task 'mitochondria'"),
        ("plaques", {"size": 8}, "--size at least 16"),
        ("plaques", {"depth": 0}, "--depth must be at least 1"),
        ("plaques", {"photons_per_unit": 0.0}, "--photons must be > 0"),
        ("plaques", {"correlation": -1.0}, "--correlation >= 0"),
    ],
)
def test_write_set_refuses_bad_options_before_writing(tmp_path, task, options, message):
    with pytest.raises(InputError, match=message):
        write_set(task, tmp_path / "data", n=1, **options)
    assert not (tmp_path / "data").exists()
