"""One source of truth for training settings: config fields, CLI options, --config, --preset."""

from __future__ import annotations

import click
import numpy as np
import pytest
import torch
import typer.main
import yaml

from semdenoise.cli import TRAIN_SETTINGS, app, option_name, settings_path
from semdenoise.config import (
    CPU_LEARNING_RATE,
    CPU_UNET,
    MODE_BLIND_FILTER,
    PRESETS,
    SECTIONS,
    JointConfig,
    MaskingConfig,
    TrainConfig,
    UNetConfig,
    preset,
)

COMMANDS = tuple(TRAIN_SETTINGS)
TINY = ["--steps", "3", "--depth", "2", "--base-channels", "4", "--val-fraction", "0"]


def command(name: str) -> click.Command:
    train = typer.main.get_command(app).commands["train"]
    return train.commands[name]


def field_of_options(name: str) -> dict[str, tuple[str, str]]:
    """Parameter name -> (section, field) for every config field a command's sections hold,
    taken by it or not (an option named like a field it does not list is a finding too)."""
    sections = set(TRAIN_SETTINGS[name]) | {"train", "unet"}
    return {
        option_name(section, field): (section, field)
        for section in sections
        for field in SECTIONS[section].model_fields
    }


def shown_default(field: str, default: object) -> bool | str:
    if isinstance(default, bool):
        flag = field.replace("_", "-")
        return flag if default else f"no-{flag}"
    if default is None:
        return False
    return f"{default:g}" if isinstance(default, float) else str(default)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_option_of_a_config_field_is_that_field(name):
    fields = field_of_options(name)
    seen = set()
    for param in command(name).params:
        if param.name not in fields:
            continue
        section, field = fields[param.name]
        info = SECTIONS[section].model_fields[field]
        where = f"train {name} --{param.name.replace('_', '-')} ({section}.{field})"
        assert field in TRAIN_SETTINGS[name].get(section, ()), f"{where}: not in TRAIN_SETTINGS"
        assert param.default is None, f"{where}: default {param.default!r}, not the field's"
        assert param.help == info.description, f"{where}: help is not the field's description"
        assert param.show_default == shown_default(field, info.get_default()), where
        if info.annotation is bool:  # tri-state: --x / --no-x / not given
            assert param.is_flag and param.secondary_opts, where
        seen.add((section, field))
    taken = {(section, field) for section, names in TRAIN_SETTINGS[name].items() for field in names}
    assert taken - seen == set(), f"train {name}: settings without an option"


def test_every_field_meant_for_users_is_taken():
    """A new config field is an option of ``train n2v`` (and a --config key) unless the
    training mode sets it; a segmenter drops only what it cannot use (residual, separate
    channels), and seg and joint take --dims 3 and its crop and pooling settings."""
    for section, names in TRAIN_SETTINGS["n2v"].items():
        assert set(SECTIONS[section].model_fields) - set(names) <= {"in_channels", "out_channels"}
    assert set(TRAIN_SETTINGS["joint"]["joint"]) == set(JointConfig.model_fields)
    assert set(TRAIN_SETTINGS["joint"]["masking"]) == set(MaskingConfig.model_fields)
    for name in ("seg", "joint"):
        assert set(TRAIN_SETTINGS[name]["train"]) == set(TrainConfig.model_fields)
        assert {"dims", "xy_only_levels"} <= set(TRAIN_SETTINGS[name]["unet"])
    unused_by_seg = set(UNetConfig.model_fields) - set(TRAIN_SETTINGS["seg"]["unet"])
    assert unused_by_seg == {"in_channels", "out_channels", "residual", "channels"}


@pytest.fixture
def captured(monkeypatch):
    """Replace the trainers: record the configs each command passes, train nothing."""
    import semdenoise.training as training

    calls: dict[str, dict] = {}

    class Trained:
        training = {"steps": 0, "seconds": 0.0, "images": 1}

    def fake(name):
        def train(*args, **kwargs):
            calls[name] = kwargs
            return Trained()

        return train

    for name in COMMANDS:
        monkeypatch.setattr(training, f"train_{name}", fake(name))
    return calls


@pytest.fixture
def images(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(50, 10, (2, 32, 32)).astype(np.float32))
    return path


def run_fake(cli, name, images, out, *extra):
    labels = ["--labels", str(images)] if name != "n2v" else []
    code, _, err = cli("train", name, str(images), *labels, "--out", str(out), *extra)
    assert code == 0, err


def test_without_options_the_configs_are_the_field_defaults(cli, captured, images, tmp_path):
    for name in COMMANDS:
        run_fake(cli, name, images, tmp_path / f"{name}.pt")
    n2v, seg, joint = captured["n2v"], captured["seg"], captured["joint"]
    assert (n2v["train"], n2v["unet"], n2v["masking"]) == (
        TrainConfig(),
        UNetConfig(blind_filter=3),  # the field is unset; the mode's default is written
        MaskingConfig(),
    )
    assert (seg["train"], seg["unet"], seg["loss"], seg["target"]) == (
        TrainConfig(),
        UNetConfig(),
        "bce",
        "foreground",
    )
    assert joint["joint"] == JointConfig() and joint["masking"] == MaskingConfig()
    assert joint["unet"] == UNetConfig(blind_filter=0)


def test_precedence_defaults_preset_file_options(cli, captured, images, tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text(
        "train:\n  steps: 7\n  learning_rate: 5.0e-4\nunet:\n  depth: 2\n  residual: true\n"
        "masking:\n  n_masked: 9\n"
    )
    out = tmp_path / "m.pt"
    run_fake(cli, "n2v", images, out, "--preset", "cpu", "--config", str(run))
    train, unet, masking = (captured["n2v"][k] for k in ("train", "unet", "masking"))
    # file over preset, preset over default; the mode's blind filter where none is set
    assert unet == UNetConfig(**{**CPU_UNET, "depth": 2, "residual": True, "blind_filter": 3})
    assert (train.steps, train.learning_rate, masking.n_masked) == (7, 5e-4, 9)
    run_fake(cli, "n2v", images, out, "--preset", "cpu", "--config", str(run),
        "--learning-rate", "2e-3", "--no-residual", "--masking", "patch",
    )  # fmt: skip
    train, unet, masking = (captured["n2v"][k] for k in ("train", "unet", "masking"))
    assert (train.learning_rate, unet.residual, masking.mode) == (2e-3, False, "patch")
    assert (train.steps, unet.base_channels, masking.n_masked) == (7, 16, 9)
    run_fake(cli, "n2v", images, out, "--preset", "cpu")
    assert captured["n2v"]["train"] == TrainConfig(learning_rate=CPU_LEARNING_RATE)


def test_presets_suit_every_command_and_cpu_is_the_defaults(cli, captured, images, tmp_path):
    for name in COMMANDS:
        run_fake(cli, name, images, tmp_path / f"{name}.pt", "--preset", "cpu")
        defaults = {section: SECTIONS[section]() for section in TRAIN_SETTINGS[name]}
        if name in MODE_BLIND_FILTER:  # unset in the field, the mode's default written
            defaults["unet"] = defaults["unet"].with_blind_filter(MODE_BLIND_FILTER[name])
        written = yaml.safe_load(settings_path(tmp_path / f"{name}.pt").read_text())
        assert written == {
            section: config.model_dump(include=set(TRAIN_SETTINGS[name][section]))
            for section, config in defaults.items()
        }
        run_fake(cli, name, images, tmp_path / f"{name}.pt", "--preset", "paper")
        paper = captured[name]
        assert (paper["unet"].depth, paper["unet"].base_channels) == (2, 32)
        assert paper["train"].learning_rate == 4e-4 and not paper["unet"].blind_filter
        if "masking" in paper:
            assert paper["masking"].pixels_per_mask == pytest.approx(256**2 / 169)
        if "noise" in paper:
            assert paper["noise"].model == "none"
        run_fake(cli, name, images, tmp_path / f"{name}.pt", "--preset", "n2v2")
        n2v2 = captured[name]
        assert (n2v2["unet"].blur_pool, n2v2["unet"].top_skip) == (True, False)
        if "masking" in n2v2:
            assert n2v2["masking"].replacement == "median"
    run_fake(cli, "seg", images, tmp_path / "s.pt", "--preset", "cpu")  # no residual in seg
    assert captured["seg"]["unet"] == UNetConfig(depth=3, base_channels=16)
    settings = preset("cpu")
    settings["unet"]["depth"] = 5
    assert PRESETS["cpu"]["unet"]["depth"] == 3  # a copy: presets do not drift


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("n2v", ["--seed", "4", "--no-augment", "--masking", "patch", "--patch-size", "16"]),
        ("seg", ["--loss", "mse", "--lr-schedule", "constant", "--negative-slope", "0.1"]),
        ("joint", ["--target", "instances", "--denoise-weight", "2", "--pretrain-denoiser"]),
    ],
)
def test_written_settings_hold_the_sections_used_and_repeat_the_run(
    cli, captured, images, tmp_path, name, extra
):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    run_fake(cli, name, images, first, "--preset", "cpu", *TINY, *extra)
    used = dict(captured[name])
    written = yaml.safe_load(settings_path(first).read_text())
    assert list(written) == list(TRAIN_SETTINGS[name])
    run_fake(cli, name, images, second, "--config", str(settings_path(first)))
    assert captured[name] == {**used, "out": second}
    assert settings_path(second).read_text() == settings_path(first).read_text()


def test_the_written_file_repeats_a_real_run_exactly(cli, images, tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    code, out, err = cli("train", "n2v", str(images), "--out", str(first), *TINY, "--no-progress",
        "--seed", "3", "--learning-rate", "1e-3", "--no-residual", "--n-masked", "4",
    )  # fmt: skip
    assert code == 0, err
    assert settings_path(first).name in out
    code, _, err = cli("train", "n2v", str(images), "--out", str(second), "--no-progress",
        "--config", str(settings_path(first)),
    )  # fmt: skip
    assert code == 0, err
    a, b = (torch.load(path, weights_only=True) for path in (first, second))
    assert a["training"]["train"] == b["training"]["train"]
    assert a["training"]["masking"] == b["training"]["masking"]
    assert a["training"]["train"]["steps"] == 3 and a["training"]["masking"]["n_masked"] == 4
    net_a, net_b = a["networks"]["denoiser"], b["networks"]["denoiser"]
    assert net_a["config"] == net_b["config"] and net_a["config"]["residual"] is False
    assert net_a["state_dict"].keys() == net_b["state_dict"].keys()
    for key, weights in net_a["state_dict"].items():
        assert torch.equal(weights, net_b["state_dict"][key]), key


@pytest.mark.parametrize(
    ("name", "text", "extra", "message"),
    [
        ("n2v", "segmenter: {}\n", [], "run.yaml: segmenter: not a section train n2v takes "
         "(it takes train, unet, masking, noise)"),
        ("n2v", "joint: {}\n", [], "run.yaml: joint: not a section train n2v takes"),
        ("n2v", "train:\n  stepz: 3\n", [], "run.yaml: train: stepz: not a setting train n2v"),
        ("seg", "unet:\n  residual: false\n", [], "run.yaml: unet: residual: not a setting "
         "train seg takes"),
        ("n2v", "train:\n  learning_rate: -1\n", [], "run.yaml: train: learning_rate: Input "
         "should be greater than 0"),
        ("joint", "joint:\n  segment_target: cells\n", [], "run.yaml: joint: segment_target: "
         "Input should be 'foreground' or 'instances'"),
        ("n2v", "- 1\n", [], "run.yaml: expected sections of settings"),
        ("n2v", "train: 3\n", [], "run.yaml: train: expected a mapping of settings, found int"),
        ("n2v", "train: [1\n", [], "run.yaml: cannot read YAML config: line 2"),
        ("n2v", "", ["--preset", "gpu"], "unknown preset 'gpu': choose one of cpu, paper, n2v2"),
        ("n2v", "", ["--replacement", "mean"], "masking options: replacement: Input should be"),
        ("seg", "", ["--loss", "hinge"], "seg options: loss: Input should be 'bce', 'dice'"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line_errors(cli, captured, images, tmp_path, name, text, extra,
                                          message):  # fmt: skip
    run = tmp_path / "run.yaml"
    run.write_text(text)
    labels = ["--labels", str(images)] if name != "n2v" else []
    out = tmp_path / "m.pt"
    code, _, err = cli(
        "train", name, str(images), *labels, "--out", str(out), "--config", str(run), *extra
    )
    assert code == 2 and err.startswith(f"error: {message.replace('run.yaml', str(run))}"), err
    assert err.count("\n") == 1
    assert not captured and not out.exists() and not settings_path(out).exists()


def test_missing_file_and_settings_over_their_own_input(cli, captured, images, tmp_path):
    out = tmp_path / "m.pt"
    code, _, err = cli("train", "n2v", str(images), "--out", str(out), "--config", "absent.yaml")
    assert code == 2 and err == "error: absent.yaml: no such file\n"
    settings_path(out).write_text("train:\n  steps: 2\n")
    code, _, err = cli("train", "n2v", str(images), "--out", str(out),
        "--config", str(settings_path(out)),
    )  # fmt: skip
    assert code == 2 and "output would overwrite an input" in err
    assert not captured
