import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from semdenoise.errors import InputError
from semdenoise.io import read_image, read_training_images, write_image


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".zarr"])
def test_write_then_read_round_trips(tmp_path, suffix):
    image = np.random.default_rng(0).normal(size=(3, 20, 30)).astype(np.float32)
    path = tmp_path / f"out{suffix}"
    write_image(path, image)
    np.testing.assert_array_equal(read_image(path), image)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_rewriting_a_zarr_output_replaces_it(tmp_path):
    path = tmp_path / "out.zarr"
    write_image(path, np.zeros((8, 8), np.float32))
    write_image(path, np.ones((10, 10), np.float32))
    np.testing.assert_array_equal(read_image(path), np.ones((10, 10)))


def test_reads_png_and_integer_types_as_float32(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "b.tif", np.full((8, 8), 60000, np.uint16))
    assert read_image(tmp_path / "a.png").dtype == np.float32
    assert read_image(tmp_path / "b.tif").max() == 60000.0


def test_reads_ome_zarr_full_resolution_level(tmp_path):
    group = zarr.open_group(tmp_path / "img.zarr", mode="w")
    group.attrs["multiscales"] = [{"datasets": [{"path": "s0"}, {"path": "s1"}]}]
    group.create_array("s0", data=np.ones((16, 16), np.uint8))
    group.create_array("s1", data=np.ones((8, 8), np.uint8))
    assert read_image(tmp_path / "img.zarr").shape == (16, 16)


def test_training_images_from_folder_and_stack(tmp_path):
    tifffile.imwrite(
        tmp_path / "stack.tif",
        np.random.rand(3, 16, 16).astype(np.float32),
        photometric="minisblack",
    )
    np.save(tmp_path / "single.npy", np.random.rand(16, 20))
    named = read_training_images(tmp_path)
    assert len(named) == 4
    assert named[1][0].endswith("stack.tif[0]") or any("stack.tif[2]" in n for n, _ in named)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(10, np.float32), "1-D array"),
        (np.zeros((2, 2, 8, 8), np.float32), "4-D array"),
        (np.zeros((8, 8), bool), "boolean"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN/inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN/inf"),
        (np.zeros((0, 8), np.float32), "empty"),
        (np.zeros((8, 8), np.complex64), "unsupported pixel type"),
    ],
)
def test_bad_arrays_are_refused_naming_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unreadable_and_foreign_files_are_refused(tmp_path):
    (tmp_path / "notes.tif").write_text("this is not a TIFF")
    (tmp_path / "data.csv").write_text("1,2,3")
    good = np.random.rand(64, 64).astype(np.float32)
    tifffile.imwrite(tmp_path / "cut.tif", good)
    data = (tmp_path / "cut.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read as .tif"):
        read_image(tmp_path / "notes.tif")
    with pytest.raises(InputError, match="unsupported file type .csv"):
        read_image(tmp_path / "data.csv")
    with pytest.raises(InputError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.tif")


def test_colour_png_is_refused(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="colour PNG"):
        read_image(tmp_path / "rgb.png")


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="holds no image files"):
        read_training_images(tmp_path)


def test_output_over_an_input_is_refused_and_input_kept(tmp_path):
    path = tmp_path / "in.npy"
    np.save(path, np.ones((8, 8), np.float32))
    before = path.read_bytes()
    with pytest.raises(InputError, match="overwrite an input"):
        write_image(path, np.zeros((8, 8), np.float32), inputs=(tmp_path / "." / "in.npy",))
    assert path.read_bytes() == before


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import tifffile as tf

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf, "imwrite", explode)
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "out.tif", np.zeros((8, 8), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_unsupported_output_type_is_refused(tmp_path):
    with pytest.raises(InputError, match="unsupported output type .png"):
        write_image(tmp_path / "out.png", np.zeros((8, 8), np.float32))


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (MemoryError(), "not enough memory to read it"),
        (OSError(5, "Input/output error"), "cannot read it: Input/output error"),
    ],
)
def test_system_failures_are_said_as_such_not_as_a_bad_file(
    tmp_path, monkeypatch, failure, message
):
    """Root ignores file modes, so the reader is made to fail as the system would."""
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.ones((8, 8), np.float32))

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tifffile, "imread", fail)
    with pytest.raises(InputError, match=f"a.tif: {message}$"):
        read_image(path)
