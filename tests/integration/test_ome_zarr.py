"""Zarr out is an OME-NGFF 0.5 multiscale pyramid, checked by an independent reader
(ngff-zarr: JSON schema, strict schema and structural rules); 5-D TCZYX OME-Zarr in."""

import numpy as np
import pytest
import torch
import zarr

import semdenoise as sd
from semdenoise.io.images import read_label_ids
from semdenoise.io.ome_zarr import ImageSpace, pyramid_factors, write_pyramid
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.predict.chunked import PROGRESS_DIR, partial_path

nz = pytest.importorskip("ngff_zarr", reason="the dev extra installs ngff-zarr[validate]")


def tiny_model() -> TrainedModel:
    torch.manual_seed(0)
    net = UNet(sd.UNetConfig(depth=1, base_channels=4)).eval()
    return TrainedModel("n2v", {"denoiser": net}, Normalization(100.0, 20.0), {})


def validated(path) -> list:
    """The levels of an OME-Zarr image as an independent reader sees them, after its
    schema (also the strict one, SHOULDs included) and structural checks."""
    attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    nz.validate(attrs, version="0.5", model="image", strict=True)
    return nz.from_ngff_zarr(str(path), validate=True).images


def halved(image: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Mean of 2 pixels along ``axes`` in NumPy, an odd last pixel with itself."""
    image = np.pad(
        image, [(0, n % 2 if a in axes else 0) for a, n in enumerate(image.shape)], "edge"
    )
    shape = []
    for axis, n in enumerate(image.shape):
        shape += [n // 2, 2] if axis in axes else [n]
    mean_over = tuple(axis + rank + 1 for rank, axis in enumerate(sorted(axes)))
    return image.reshape(shape).mean(axis=mean_over)


def test_pyramid_rule():
    # larger than one chunk: at least one more level, even when small
    assert pyramid_factors((90, 75), (32, 32)) == [(1, 1), (2, 2)]
    assert pyramid_factors((20, 30), (256, 256)) == [(1, 1)]  # one chunk: nothing to add
    # halve until the level fits one chunk or its smaller side is at most 256
    assert pyramid_factors((3000, 2000), (1024, 1024)) == [(1, 1), (2, 2), (4, 4)]
    assert pyramid_factors((3000, 2000), (256, 256)) == [(1, 1), (2, 2), (4, 4), (8, 8)]
    # thick slices (1 um under 0.32 um pixels) stay whole until Y/X pixels are as large
    anisotropic = pyramid_factors((64, 4096, 4096), (1, 256, 256), spacing=(1.0, 0.32, 0.32))
    assert anisotropic == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (2, 8, 8), (4, 16, 16)]
    isotropic = pyramid_factors((8, 600, 600), (8, 256, 256), spacing=(1.0, 1.0, 1.0))
    assert isotropic == [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
    # no known voxel size: Z is never averaged (a stack may hold unrelated slices)
    assert all(f[0] == 1 for f in pyramid_factors((64, 4096, 4096), (1, 256, 256)))


def write_input(path, image):
    """An OME-Zarr 0.5 stack in micrometres, with an origin."""
    group = zarr.open_group(str(path), mode="w")
    group.create_array("0", data=image, chunks=(1, 32, 32))
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    transforms = [
        {"type": "scale", "scale": [1.0, 0.32, 0.32]},
        {"type": "translation", "translation": [0.0, 10.0, 20.0]},
    ]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
        ],
    }


def test_denoise_zarr_writes_a_pyramid_an_ngff_reader_validates(tmp_path):
    rng = np.random.default_rng(3)
    image = (100 + 20 * rng.normal(size=(3, 90, 75))).astype(np.uint16)
    write_input(tmp_path / "in.zarr", image)
    target = sd.denoise_zarr(
        tiny_model(), tmp_path / "in.zarr", tmp_path / "out.zarr", chunk_size=32
    )
    levels = validated(target)
    assert len(levels) == 2  # 90x75 in chunks of 32: one halved level, small enough
    assert [level.data.shape for level in levels] == [(3, 90, 75), (3, 45, 38)]
    assert levels[1].scale == {"z": 1.0, "y": 0.64, "x": 0.64}  # Z kept: 1 um > 0.64 um
    # a mean's pixel centre lies between the pixels it averages: half a level-0 pixel on
    assert levels[0].translation == {"z": 0.0, "y": 10.0, "x": 20.0}
    assert levels[1].translation == pytest.approx({"z": 0.0, "y": 10.16, "x": 20.16})
    group = zarr.open_group(str(target), mode="r")
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert [a.get("unit") for a in multiscale["axes"]] == ["micrometer"] * 3
    assert group["1"].metadata.dimension_names == ("z", "y", "x")
    assert group["1"].dtype == np.float32 and group["1"].chunks == group["0"].chunks
    denoised = sd.read_image(target)  # readers still get level 0
    np.testing.assert_allclose(group["1"][...], halved(denoised, (1, 2)), rtol=1e-6, atol=1e-4)


def test_a_run_killed_while_writing_levels_resumes_without_redoing_chunks(tmp_path, monkeypatch):
    import semdenoise.predict.chunked as chunked

    image = np.random.default_rng(4).normal(100, 20, size=(2, 40, 36)).astype(np.float32)
    write_input(tmp_path / "in.zarr", image)
    target = tmp_path / "out.zarr"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    real = chunked.write_pyramid
    monkeypatch.setattr(chunked, "write_pyramid", killed)
    with pytest.raises(KeyboardInterrupt):
        sd.denoise_zarr(tiny_model(), tmp_path / "in.zarr", target, chunk_size=32)
    assert not target.exists() and any((partial_path(target) / PROGRESS_DIR).iterdir())
    monkeypatch.setattr(chunked, "write_pyramid", real)
    calls: list[tuple] = []
    sd.denoise_zarr(
        tiny_model(), tmp_path / "in.zarr", target, chunk_size=32, on_chunk=calls.append
    )
    assert calls == []  # every chunk was done: only the levels were written again
    assert [level.data.shape for level in validated(target)] == [(2, 40, 36), (2, 20, 18)]


def test_write_image_writes_the_same_layout(tmp_path, monkeypatch):
    import dask.array as da

    stored: list[tuple] = []
    store = da.store

    def spy(source, target, **kwargs):
        stored.append(source.chunksize)
        return store(source, target, **kwargs)

    monkeypatch.setattr(da, "store", spy)
    rng = np.random.default_rng(5)
    image = rng.normal(size=(3, 70, 41)).astype(np.float32)
    sd.write_image(tmp_path / "img.zarr", image, chunks=(1, 32, 32))
    levels = validated(tmp_path / "img.zarr")
    assert [level.data.shape for level in levels] == [(3, 70, 41), (3, 35, 21)]
    assert levels[1].scale == {"z": 1.0, "y": 2.0, "x": 2.0}
    np.testing.assert_array_equal(sd.read_image(tmp_path / "img.zarr"), image)
    np.testing.assert_allclose(np.asarray(levels[1].data), halved(image, (1, 2)), rtol=1e-6)
    assert stored == [(1, 32, 21)]  # chunk by chunk (level 0's, capped), never whole
    # labels: every second pixel, so no new values appear; no shift of the origin
    labels = rng.integers(0, 5, size=(70, 41)).astype(np.uint16)
    sd.write_image(tmp_path / "labels.zarr", labels, chunks=(32, 32))
    levels = validated(tmp_path / "labels.zarr")
    assert levels[1].data.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(levels[1].data), labels[::2, ::2])
    assert levels[1].translation == {"y": 0.0, "x": 0.0}
    np.testing.assert_array_equal(read_label_ids(tmp_path / "labels.zarr"), labels)
    # one chunk: a one-level pyramid, still valid OME-Zarr
    sd.write_image(tmp_path / "small.zarr", np.ones((20, 30), np.float32))
    assert len(validated(tmp_path / "small.zarr")) == 1
    with pytest.raises(sd.InputError, match=r"four\.zarr: Zarr output holds a 2-D .*got 4-D"):
        sd.write_image(tmp_path / "four.zarr", np.zeros((2, 2, 8, 8), np.float32))
    assert not (tmp_path / "four.zarr").exists()


def test_z_is_halved_where_the_voxel_size_allows(tmp_path):
    image = np.random.default_rng(6).normal(size=(8, 40, 36)).astype(np.float32)
    group = zarr.open_group(str(tmp_path / "iso.zarr"), mode="w", zarr_format=3)
    group.create_array("0", data=image, chunks=(2, 8, 8), dimension_names=("z", "y", "x"))
    axes = tuple({"name": n, "type": "space", "unit": "micrometer"} for n in "zyx")
    space = ImageSpace(axes=axes, scale=(0.5, 0.5, 0.5), spacing_known=True)
    factors = write_pyramid(group, space, name="iso", min_side=4)
    assert factors == [(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)]
    levels = validated(tmp_path / "iso.zarr")
    assert [level.data.shape for level in levels] == [
        (8, 40, 36),
        (4, 20, 18),
        (2, 10, 9),
        (1, 5, 5),
    ]
    assert levels[3].scale == {"z": 4.0, "y": 4.0, "x": 4.0}
    expected = image
    for level in levels[1:]:
        expected = halved(expected, (0, 1, 2))
        np.testing.assert_allclose(np.asarray(level.data), expected, rtol=1e-5, atol=1e-6)


def write_tczyx(path, volume, *, bioformats2raw: bool):
    """A 5-D image as bioformats2raw writes it (Zarr v2, OME-NGFF 0.4, the image in the
    container's series ``0``), or as a bare OME-Zarr 0.5 image (Zarr v3)."""
    axes = [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        *({"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"),
    ]
    multiscale = {
        "axes": axes,
        "datasets": [
            {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
            for k, scale in enumerate([[1.0, 1.0, 2.0, 0.5, 0.5], [1.0, 1.0, 2.0, 1.0, 1.0]])
        ],
        "name": "series 0",
    }
    if bioformats2raw:
        root = zarr.open_group(str(path), mode="w", zarr_format=2)
        root.attrs["bioformats2raw.layout"] = 3
        root.create_group("OME").attrs["series"] = ["0"]
        image = root.create_group("0")
        image.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        image = zarr.open_group(str(path), mode="w", zarr_format=3)
        image.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    names = {} if bioformats2raw else {"dimension_names": tuple("tczyx")}  # a v3 MUST
    for k, level in enumerate([volume, volume[..., ::2, ::2]]):
        image.create_array(str(k), data=level, chunks=(1, 1, 1, 32, 32), **names)


@pytest.mark.parametrize("bioformats2raw", [True, False])
def test_reads_tczyx_ome_zarr_by_squeezing_t_and_c(tmp_path, bioformats2raw):
    volume = np.random.default_rng(7).normal(100, 20, size=(1, 1, 4, 40, 36)).astype(np.uint16)
    path = tmp_path / "tczyx.zarr"
    write_tczyx(path, volume, bioformats2raw=bioformats2raw)
    assert nz.from_ngff_zarr(str(path), validate=True).images[0].dims == tuple("tczyx")
    np.testing.assert_array_equal(sd.read_image(path), volume[0, 0])
    target = sd.denoise_zarr(tiny_model(), path, tmp_path / "out.zarr", chunk_size=32)
    levels = validated(target)
    assert levels[0].dims == ("z", "y", "x") and levels[0].data.shape == (4, 40, 36)
    assert levels[0].scale == {"z": 2.0, "y": 0.5, "x": 0.5}
    assert levels[1].scale == {"z": 2.0, "y": 1.0, "x": 1.0}
    np.testing.assert_allclose(
        sd.read_image(target), sd.denoise(tiny_model(), volume[0, 0]), rtol=1e-5, atol=1e-3
    )


def test_several_time_points_or_channels_are_a_one_line_error(tmp_path):
    volume = np.zeros((2, 1, 3, 40, 36), np.uint16)
    write_tczyx(tmp_path / "t.zarr", volume, bioformats2raw=True)
    message = (
        r"t\.zarr: OME-Zarr image with axes \(t, c, z, y, x\) of shape \(2, 1, 3, 40, 36\) "
        r"has t=2; expected a single time point and channel$"
    )
    with pytest.raises(sd.InputError, match=message):
        sd.read_image(tmp_path / "t.zarr")
    write_tczyx(tmp_path / "c.zarr", volume.reshape(1, 2, 3, 40, 36), bioformats2raw=False)
    with pytest.raises(sd.InputError, match=r"c\.zarr: .* has c=2; expected"):
        sd.denoise_zarr(tiny_model(), tmp_path / "c.zarr", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_declared_axes_read_a_multichannel_ome_zarr_as_stored(tmp_path):
    volume = np.arange(2 * 3 * 40 * 36, dtype=np.uint16).reshape(1, 2, 3, 40, 36)
    write_tczyx(tmp_path / "c.zarr", volume, bioformats2raw=True)
    read = sd.read_image(tmp_path / "c.zarr", axes="TCZYX")
    np.testing.assert_array_equal(read, volume)
    with pytest.raises(sd.InputError, match=r"c\.zarr: 5-D array .* does not match axes 'CZYX'"):
        sd.read_image(tmp_path / "c.zarr", axes="CZYX")
