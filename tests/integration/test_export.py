"""``semdenoise export``: BioImage Model Zoo packages that ``bioimageio test`` passes offline,
whose outputs are semdenoise's own, and the errors a user can cause."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import semdenoise as sd
from semdenoise.errors import DependencyError, InputError
from semdenoise.predict.denoise import learned_noise_model

pytest.importorskip("bioimageio.core")

TINY = sd.UNetConfig(depth=2, base_channels=4)
# the N2V model learns a noise model: its package runs 16 blind-spot passes, so the
# smallest U-Net (halo 12 px, tiles from 26 px) keeps its bioimageio test quick
SMALLEST = sd.UNetConfig(depth=1, base_channels=4)
QUICK = sd.TrainConfig(steps=3, batch_size=2, val_fraction=0.0)
ROOT = Path(__file__).resolve().parents[2]


def blobs(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth bright blobs on a gradient (a clean image with structure to learn)."""
    from scipy.ndimage import gaussian_filter

    points = (rng.uniform(size=shape) > 0.995).astype(np.float32)
    clean = 20.0 + 10.0 * np.linspace(0, 1, shape[1]) + 3000.0 * gaussian_filter(points, 4)
    return clean.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """(noisy, masks): 3 images of 64x64, big enough to train, too small to sample."""
    rng = np.random.default_rng(0)
    clean = np.stack([blobs((64, 64), rng) for _ in range(3)])
    noisy = clean + rng.normal(0, 15, clean.shape).astype(np.float32)
    return noisy, (clean > np.percentile(clean, 80)).astype(np.uint8)


@pytest.fixture(scope="module")
def models(data, tmp_path_factory) -> dict[str, Path]:
    noisy, masks = data
    folder = tmp_path_factory.mktemp("models")
    paths = {kind: folder / f"{kind}.pt" for kind in ("n2v", "joint", "seg")}
    sd.train_n2v(noisy, unet=SMALLEST, train=QUICK, out=paths["n2v"])
    sd.train_joint(noisy, labels=masks, unet=TINY, train=QUICK, out=paths["joint"])
    sd.train_seg(noisy, masks, unet=TINY, train=QUICK, out=paths["seg"])
    return paths


def _sample_file(shape: tuple[int, int], seed: int, folder: Path) -> Path:
    rng = np.random.default_rng(seed)
    image = blobs(shape, rng) + rng.normal(0, 15, shape).astype(np.float32)
    path = folder / "image.tif"
    tifffile.imwrite(path, image)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A real image file to cut the test input from (larger than the 256x256 crop)."""
    return _sample_file((300, 280), 1, tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory) -> Path:
    """A real image smaller than the crop, of sizes the package's step divides: the test
    input is all of it (and a posterior package, 16 passes, tests in a third of the time
    of a 256x256 one)."""
    return _sample_file((150, 138), 2, tmp_path_factory.mktemp("small_sample"))


def bioimageio_test(package: Path, tmp_path: Path) -> str:
    """Run bioimageio.core's test of a package in a fresh interpreter, offline: a proxy
    that refuses every connection, and a cache of its own."""
    env = os.environ | {
        "BIOIMAGEIO_CACHE_PATH": str(tmp_path / "bioimageio-cache"),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        # tiny tensors: on a busy machine, two threads wait on each other at every
        # operation (seconds per call of the 16-pass network); one thread does not
        "OMP_NUM_THREADS": "1",
    }
    code = (
        "import sys; from bioimageio.core import test_model; "
        "summary = test_model(sys.argv[1]); "
        "print('\\n'.join(f'{d.status} {d.name}: {[e.msg for e in d.errors]}' "
        "for d in summary.details)); print('STATUS', summary.status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(package)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def read_package(package: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """rdf.yaml and the test tensors of a package."""
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        tensors = {}
        for entry in rdf["inputs"] + rdf["outputs"]:
            with archive.open(entry["test_tensor"]["source"]) as file:
                tensors[entry["id"]] = np.load(file)
    return rdf, tensors


def test_n2v_export_passes_bioimageio_test_and_gives_semdenoise_output(
    cli, models, small_sample, tmp_path
):
    sample = small_sample
    out = tmp_path / "n2v.zip"
    code, stdout, err = cli("export", str(models["n2v"]), str(out), "--sample", str(sample))
    assert code == 0, err
    assert "wrote" in stdout and out.exists()
    report = bioimageio_test(out, tmp_path)
    assert "STATUS passed" in report, report
    assert "pytorch_state_dict" in report and "torchscript" in report

    rdf, tensors = read_package(out)
    assert rdf["format_version"].startswith("0.5")
    assert [o["id"] for o in rdf["outputs"]] == ["denoised"]
    weights = rdf["weights"]["pytorch_state_dict"]
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        architecture = archive.read(weights["architecture"]["source"]).decode()
        readme = archive.read("README.md").decode()
    assert {weights["architecture"]["source"], "cover.png", "README.md"} <= names
    imports = [
        line.split()[1]
        for line in architecture.splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert not [name for name in imports if name.startswith("semdenoise")]
    assert "image.tif" in readme and str(sample.parent) not in readme  # no folder of ours
    # the whole sample, its output what `semdenoise denoise` gives: the model learned a
    # noise model, so the posterior mean of 16 blind-spot passes, edges included
    noisy = tensors["noisy"][0, 0]
    np.testing.assert_array_equal(noisy, tifffile.imread(sample))
    model = sd.load_model(models["n2v"])
    assert learned_noise_model(model) is not None
    expected = sd.denoise(model, noisy)
    tolerance = 1e-4 * float(np.ptp(noisy))  # of the data range, edges included
    np.testing.assert_allclose(tensors["denoised"][0, 0], expected, rtol=0, atol=tolerance)
    # ... which the network's mean prediction alone is not
    mean_only = sd.denoise(model, noisy, posterior=False)
    assert np.abs(tensors["denoised"][0, 0] - mean_only).max() > 100 * tolerance
    # tiles see the masked pixels' windows too: the halo adds the masking radius
    radius = model.training["masking"].get("radius", 2)
    halos = [axis["halo"] for axis in rdf["outputs"][0]["axes"] if axis["type"] == "space"]
    assert min(halos) >= model.denoiser.config.receptive_radius + radius
    assert "posterior mean" in readme and "--no-posterior" in readme


def test_joint_export_has_two_outputs_and_passes_bioimageio_test(cli, models, tmp_path):
    out = tmp_path / "joint.zip"
    code, _, err = cli("export", str(models["joint"]), str(out))  # synthetic test input
    assert code == 0, err
    report = bioimageio_test(out, tmp_path)
    assert "STATUS passed" in report, report
    rdf, tensors = read_package(out)
    assert [o["id"] for o in rdf["outputs"]] == ["denoised", "foreground"]
    # a joint model learns no noise model: its denoised image is the network's mean
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["posterior"] is None
    noisy = tensors["noisy"][0, 0]
    np.testing.assert_allclose(
        tensors["denoised"][0, 0], sd.denoise(models["joint"], noisy), rtol=1e-4, atol=1e-3
    )
    np.testing.assert_allclose(
        tensors["foreground"][0, 0],
        sd.segment(models["joint"], noisy, probabilities=True),
        atol=1e-5,
    )
    # the synthetic input lies in the training range: normalised, mean 0 and std 1 roughly
    model = sd.load_model(models["joint"])
    normalized = model.normalization.normalize(noisy)
    assert abs(normalized.mean()) < 0.2 and 0.8 < normalized.std() < 1.2


def test_segmenter_export_gives_probabilities(models, sample, tmp_path):
    out = sd.export_model(models["seg"], tmp_path / "seg.zip", sample=sample)
    report = bioimageio_test(out, tmp_path)
    assert "STATUS passed" in report, report
    rdf, tensors = read_package(out)
    assert [o["id"] for o in rdf["outputs"]] == ["foreground"]
    assert rdf["outputs"][0].get("postprocessing", []) == []
    # a centred 256x256 crop of a larger sample
    assert tensors["noisy"].shape == (1, 1, 256, 256)
    np.testing.assert_array_equal(tensors["noisy"][0, 0], tifffile.imread(sample)[22:278, 12:268])
    probabilities = tensors["foreground"][0, 0]
    np.testing.assert_allclose(
        probabilities,
        sd.segment(models["seg"], tensors["noisy"][0, 0], probabilities=True),
        atol=1e-5,
    )


def test_package_cites_what_citation_cff_says():
    from semdenoise.export import package

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert package.LICENSE == citation["license"]
    assert package.AUTHORS == [{"name": a["name"]} for a in citation["authors"]]
    paper = citation["references"][0]
    assert paper["title"] in package.PAPER
    assert all(a["family-names"] in package.PAPER for a in paper["authors"])


def test_not_a_model_file_is_one_line_and_writes_nothing(cli, tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a model")
    out = tmp_path / "out.zip"
    code, _, err = cli("export", str(bogus), str(out))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "not a readable model file" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bogus]


def test_errors_a_user_can_cause(cli, models, data, tmp_path):
    noisy, _ = data
    code, _, err = cli("export", str(models["n2v"]), str(tmp_path / "out.tar"))
    assert code == 2 and "is a .zip file" in err
    # the joint model's two networks need tiles of two halos (2 x (28 + 28)) and a step
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, noisy[0])
    out = tmp_path / "joint.zip"
    code, _, err = cli("export", str(models["joint"]), str(out), "--sample", str(small))
    assert code == 2 and err.count("\n") == 1
    assert "64x64 pixels is smaller than the 116x116" in err
    assert not out.exists()
    # (the segmenter: its package is the quickest to build before the name is refused)
    with pytest.raises(InputError, match="--name 'xxx.*: .*128"):
        sd.export_model(models["seg"], tmp_path / "out.zip", name="x" * 300)
    assert not (tmp_path / "out.zip").exists()
    with pytest.raises(InputError, match="folder .* does not exist"):
        sd.export_model(models["n2v"], tmp_path / "nowhere" / "out.zip")


def test_without_bioimageio_the_error_names_the_extra(models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)  # import fails
    with pytest.raises(DependencyError, match=r"pip install 'semdenoise\[export\]'"):
        sd.export_model(models["n2v"], tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_a_joint_segmenter_that_sees_noisy_and_denoised_exports_as_it_segments(data, tmp_path):
    noisy, masks = data
    model = sd.train_joint(
        noisy,
        labels=masks,
        unet=TINY,
        joint=sd.JointConfig(segment_input="both"),
        train=QUICK,
        out=tmp_path / "both.pt",
    )
    assert model.segmenter.config.in_channels == 2
    out = sd.export_model(tmp_path / "both.pt", tmp_path / "both.zip")
    _, tensors = read_package(out)
    image = tensors["noisy"][0, 0]
    np.testing.assert_allclose(
        tensors["foreground"][0, 0], sd.segment(model, image, probabilities=True), atol=1e-5
    )
