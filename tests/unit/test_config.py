import pytest

from semdenoise.config import TrainConfig, UNetConfig, load_yaml, parse, save_yaml
from semdenoise.errors import InputError


def test_yaml_round_trip(tmp_path):
    config = TrainConfig(steps=10, max_minutes=2.5, seed=3)
    save_yaml(config, tmp_path / "c.yaml")
    assert load_yaml(TrainConfig, tmp_path / "c.yaml") == config


def test_unknown_and_out_of_range_settings_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="stepz"):
        parse(TrainConfig, {"stepz": 3}, source="train options")
    with pytest.raises(InputError, match="depth"):
        parse(UNetConfig, {"depth": 0}, source="network")
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_yaml(TrainConfig, tmp_path / "bad.yaml")
