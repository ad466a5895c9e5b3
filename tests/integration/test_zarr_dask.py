"""Larger-than-memory prediction: Zarr in, Dask chunks with a halo, Zarr out, resumable."""

import itertools

import numpy as np
import pytest
import torch
import zarr

import semdenoise as sd
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.predict.chunked import PROGRESS_DIR, partial_path


def tiny_model(depth: int = 2) -> TrainedModel:
    """An untrained network with non-trivial BatchNorm statistics, as after training."""
    torch.manual_seed(0)
    net = UNet(sd.UNetConfig(depth=depth, base_channels=4))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return TrainedModel(
        kind="n2v",
        networks={"denoiser": net.eval()},
        normalization=Normalization(mean=100.0, std=20.0),
        training={"blind_spot_mse": 900.0},
    )


def write_zarr(path, image, chunks, *, ome=False):
    if ome:
        group = zarr.open_group(str(path), mode="w")
        group.create_array("0", shape=image.shape, chunks=chunks, dtype=image.dtype)[...] = image
        axes = [{"name": n, "type": "space"} for n in "zyx"[-image.ndim :]]
        scale = [1.0, 0.32, 0.32][-image.ndim :]
        group.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": axes,
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": scale}],
                        }
                    ],
                }
            ],
        }
    else:
        array = zarr.create_array(
            store=str(path), shape=image.shape, chunks=chunks, dtype=image.dtype
        )
        array[...] = image


@pytest.fixture
def stack(tmp_path):
    rng = np.random.default_rng(3)
    image = (100 + 20 * rng.normal(size=(3, 90, 75))).astype(np.uint16)
    path = tmp_path / "stack.zarr"
    write_zarr(path, image, (1, 32, 32), ome=True)
    return path, image


@pytest.mark.parametrize("depth", [1, 2])
def test_dask_output_equals_in_memory_denoise(tmp_path, stack, depth):
    path, image = stack
    model = tiny_model(depth)
    target = sd.denoise_zarr(model, path, tmp_path / "out.zarr", chunk_size=24, tile_size=40)
    expected = sd.denoise(model, image)
    result = sd.read_image(target)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-3)
    group = zarr.open_group(str(target), mode="r")
    halo = model.denoiser.config.receptive_radius  # chunks are never smaller than it
    side = max(24, -(-halo // 4) * 4)
    assert group["0"].dtype == np.float32 and group["0"].chunks == (1, side, side)
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.32, 0.32]
    assert group.attrs["semdenoise"]["complete"] is True
    assert not (target / PROGRESS_DIR).exists() and not partial_path(target).exists()


def test_two_d_image_and_noise_sigma_blend(tmp_path):
    image = np.random.default_rng(4).normal(100, 20, size=(70, 101)).astype(np.float32)
    write_zarr(tmp_path / "plane.zarr", image, (70, 50))
    model = tiny_model()
    target = sd.denoise_zarr(
        model, tmp_path / "plane.zarr", tmp_path / "out.zarr", chunk_size=32, noise_sigma=10.0
    )
    np.testing.assert_allclose(
        sd.read_image(target), sd.denoise(model, image, noise_sigma=10.0), rtol=1e-5, atol=1e-3
    )


class Stop(Exception):
    pass


def test_interrupted_run_resumes_without_redoing_chunks(tmp_path, stack):
    path, _ = stack
    model = tiny_model()
    # one worker throughout: torch's thread count changes float rounding, and this test
    # compares bit for bit
    straight = sd.denoise_zarr(model, path, tmp_path / "straight.zarr", chunk_size=32, workers=1)
    target = tmp_path / "out.zarr"
    first: list[tuple] = []

    def stop_after_four(block_id):
        first.append(block_id)
        if len(first) == 4:
            raise Stop

    with pytest.raises(Stop):
        # one worker: chunks in turn, so the stop lands after exactly four
        sd.denoise_zarr(model, path, target, chunk_size=32, on_chunk=stop_after_four, workers=1)
    assert not target.exists()  # an unfinished output never has the final name
    assert len(list((partial_path(target) / PROGRESS_DIR).iterdir())) == 4
    second: list[tuple] = []
    sd.denoise_zarr(model, path, target, chunk_size=32, on_chunk=second.append, workers=1)
    total = 3 * 2 * 2  # Z slices x Y chunks (32, 58) x X chunks (32, 43): no sliver < halo
    assert len(second) == total - 4 and not set(first) & set(second)
    np.testing.assert_array_equal(sd.read_image(target), sd.read_image(straight))


def stopped_after_one_chunk(model, path, target, **options) -> None:
    def stop(block_id):
        raise Stop

    with pytest.raises(Stop):  # one worker: chunks in turn, so exactly one is written
        sd.denoise_zarr(model, path, target, chunk_size=32, on_chunk=stop, workers=1, **options)


def test_a_changed_run_keeps_the_finished_chunks_and_names_no_resume(tmp_path, stack):
    path, _ = stack
    target = tmp_path / "out.zarr"
    stopped_after_one_chunk(tiny_model(), path, target)
    markers = partial_path(target) / PROGRESS_DIR
    # another option (tile size) or another model: stop, name the partial output and
    # --no-resume, and throw nothing away (it used to start over silently)
    for changed in ({"tile_size": 64}, {"noise_sigma": 10.0}):
        with pytest.raises(
            sd.InputError,
            match=r"\.out\.zarr\.partial: unfinished output of "
            r"another run \(1 chunk\(s\) written; .*--no-resume",
        ) as error:
            sd.denoise_zarr(tiny_model(), path, target, chunk_size=32, **changed)
        assert next(iter(changed)) in str(error.value) and "\n" not in str(error.value)
        assert len(list(markers.iterdir())) == 1
    other = tiny_model()
    with torch.no_grad():
        next(other.denoiser.parameters()).add_(0.1)  # same network, other weights
    with pytest.raises(sd.InputError, match="; model differ"):
        sd.denoise_zarr(other, path, target, chunk_size=32)
    # what does not change the values written is not "another run": resumed
    calls: list[tuple] = []
    sd.denoise_zarr(tiny_model(), path, target, chunk_size=32, on_chunk=calls.append, batch_size=3)
    assert len(calls) == 11
    # --no-resume starts over on purpose; a finished output is replaced, not resumed
    stopped_after_one_chunk(tiny_model(), path, target)
    calls.clear()
    sd.denoise_zarr(tiny_model(), path, target, chunk_size=32, on_chunk=calls.append, resume=False)
    assert len(calls) == 12
    calls.clear()
    sd.denoise_zarr(tiny_model(), path, target, chunk_size=32, on_chunk=calls.append)
    assert len(calls) == 12


def test_a_transient_read_error_never_throws_finished_chunks_away(tmp_path, stack, monkeypatch):
    import errno

    import semdenoise.predict.chunked as chunked

    path, _ = stack
    model = tiny_model()
    target = tmp_path / "out.zarr"
    stopped_after_one_chunk(model, path, target)
    real = chunked._zarr_attrs

    def flaky_disk(where):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(chunked, "_zarr_attrs", flaky_disk)
    with pytest.raises(
        sd.InputError,
        match=r"cannot read the unfinished output \(1 chunk\(s\) "
        r"written\): cannot read it: Input/output error; .*--no-resume",
    ):
        sd.denoise_zarr(model, path, target, chunk_size=32)
    monkeypatch.setattr(chunked, "_zarr_attrs", real)
    calls: list[tuple] = []
    sd.denoise_zarr(model, path, target, chunk_size=32, on_chunk=calls.append)
    assert len(calls) == 11  # the disk came back: resumed, not started over


def test_a_leftover_without_finished_chunks_starts_over(tmp_path, stack):
    path, image = stack
    model = tiny_model()
    target = tmp_path / "out.zarr"
    partial_path(target).mkdir()  # killed before its first chunk: unreadable, nothing lost
    (partial_path(target) / "zarr.json").write_text("{not json")
    sd.denoise_zarr(model, path, target, chunk_size=32)
    expected = sd.denoise(model, image)
    np.testing.assert_allclose(sd.read_image(target), expected, rtol=1e-5, atol=1e-3)


def test_distributed_local_cluster(tmp_path, stack):
    from distributed import Client, LocalCluster

    path, image = stack
    model = tiny_model()
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        by_client = sd.denoise_zarr(
            model, path, tmp_path / "a.zarr", chunk_size=48, scheduler=client
        )
        by_address = sd.denoise_zarr(
            model, path, tmp_path / "b.zarr", chunk_size=48, scheduler=cluster.scheduler_address
        )
    expected = sd.denoise(model, image)
    np.testing.assert_allclose(sd.read_image(by_client), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sd.read_image(by_address), expected, rtol=1e-5, atol=1e-3)


def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, stack):
    path, _ = stack
    model = tiny_model()
    with pytest.raises(sd.InputError, match="no such file"):
        sd.denoise_zarr(model, tmp_path / "missing.zarr", tmp_path / "o.zarr")
    write_zarr(tmp_path / "four.zarr", np.zeros((2, 2, 16, 16), np.float32), (1, 1, 16, 16))
    with pytest.raises(sd.InputError, match="4-D array"):
        sd.denoise_zarr(model, tmp_path / "four.zarr", tmp_path / "o.zarr")
    with pytest.raises(sd.InputError, match="overwrite an input"):
        sd.denoise_zarr(model, path, path)
    with pytest.raises(sd.InputError, match="must be a .zarr"):
        sd.denoise_zarr(model, path, tmp_path / "o.tif")
    with pytest.raises(sd.InputError, match="cannot reach the Dask scheduler"):
        sd.denoise_zarr(model, path, tmp_path / "o.zarr", scheduler="tcp://127.0.0.1:1")
    bad = np.full((1, 40, 40), 5.0, np.float32)
    bad[0, 33, 7] = np.nan
    write_zarr(tmp_path / "nan.zarr", bad, (1, 40, 40))
    with pytest.raises(sd.InputError, match=r"nan.zarr\[0:1, 0:40, 0:40\].*NaN"):
        sd.denoise_zarr(model, tmp_path / "nan.zarr", tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()


def test_cli_zarr_to_zarr_goes_through_dask(cli, tmp_path, stack):
    path, image = stack
    model = tiny_model()
    sd.save_model(model, tmp_path / "m.pt")
    out = tmp_path / "out.zarr"
    code, stdout, _ = cli("denoise", str(tmp_path / "m.pt"), str(path), str(out),
        "--chunk-size", "48", "--workers", "2",
    )  # fmt: skip
    assert code == 0 and "wrote" in stdout
    np.testing.assert_allclose(sd.read_image(out), sd.denoise(model, image), rtol=1e-5, atol=1e-3)
    code, _, err = cli("denoise", str(tmp_path / "m.pt"), str(path), str(tmp_path / "o.tif"),
        "--scheduler", "tcp://127.0.0.1:1",
    )  # fmt: skip
    assert code == 2 and err.startswith("error:") and "Zarr" in err and len(err.splitlines()) == 1


def test_a_permission_problem_is_said_as_such(tmp_path, stack, monkeypatch):
    import semdenoise.io.images as images

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images, "_open_zarr_array", denied)
    with pytest.raises(sd.InputError, match=r"stack.zarr: permission denied$"):
        sd.denoise_zarr(tiny_model(), stack[0], tmp_path / "out.zarr")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@pytest.mark.parametrize(
    ("dims", "shape", "options"),
    [
        (2, (70, 101), {"chunk_size": 32}),
        (3, (20, 40, 38), {"chunk_size": 16, "chunk_depth": 8}),
    ],
)
def test_each_chunk_is_predicted_once_with_its_halo_and_no_second_one(
    tmp_path, monkeypatch, dims, shape, options
):
    """The network sees every chunk with its halo (read from the neighbours, or padded
    where the image ends), never padded again, and the output is the in-memory one."""
    from semdenoise.predict.chunk_plan import chunk_layout
    from semdenoise.predict.inference import InferenceNet

    torch.manual_seed(0)
    config = sd.UNetConfig(dims=dims, depth=2 if dims == 2 else 1, base_channels=4)
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": UNet(config).eval()},
        normalization=Normalization(mean=100.0, std=20.0),
    )
    image = np.random.default_rng(6).normal(100, 20, size=shape).astype(np.float32)
    write_zarr(tmp_path / "in.zarr", image, shape)
    seen = []
    forward = InferenceNet.forward
    monkeypatch.setattr(
        InferenceNet, "forward", lambda net, batch: seen.append(batch.shape) or forward(net, batch)
    )
    target = sd.denoise_zarr(model, tmp_path / "in.zarr", tmp_path / "out.zarr", **options)
    _, halos, chunks = chunk_layout(
        shape, config, chunk_size=options["chunk_size"], chunk_depth=options.get("chunk_depth", 1)
    )
    multiples = (config.z_multiple,) * (dims - 2) + (config.size_multiple,) * 2
    expected = sorted(
        tuple(_round_up(c + 2 * h, m) for c, h, m in zip(sizes, halos, multiples, strict=True))
        for sizes in itertools.product(*chunks)
    )
    assert sorted(tuple(s[2:]) for s in seen) == expected
    assert all(s[0] == 1 for s in seen)  # one window per chunk
    in_memory = sd.denoise(model, image)
    data_range = float(image.max() - image.min())
    np.testing.assert_allclose(sd.read_image(target), in_memory, atol=1e-4 * data_range, rtol=0)


def test_a_learned_noise_model_posterior_through_chunks_equals_in_memory(tmp_path):
    """16 blind-spot passes per chunk, each pixel's from its own pass: the same values
    as the in-memory posterior, with each chunk's halo as context."""
    torch.manual_seed(0)
    net = UNet(sd.UNetConfig(depth=2, base_channels=4, out_channels=2)).eval()
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": net},
        normalization=Normalization(mean=100.0, std=20.0),
        training={"noise_model": {"kind": "gaussian", "offset": 0.3, "slope": 0.0}},
    )
    image = np.random.default_rng(7).normal(100, 20, size=(60, 70)).astype(np.float32)
    write_zarr(tmp_path / "in.zarr", image, (60, 70))
    target = sd.denoise_zarr(model, tmp_path / "in.zarr", tmp_path / "out.zarr", chunk_size=32)
    data_range = float(image.max() - image.min())
    np.testing.assert_allclose(
        sd.read_image(target), sd.denoise(model, image), atol=1e-4 * data_range, rtol=0
    )
