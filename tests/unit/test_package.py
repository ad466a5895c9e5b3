"""The package's public names, and what importing it costs a command that only predicts."""

import subprocess
import sys

import pytest

import semdenoise as sd


def test_every_public_name_resolves_and_unknown_names_fail():
    for name in sd.__all__:
        assert getattr(sd, name).__name__ == name
    assert set(sd.__all__) <= set(dir(sd))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sd.nope  # noqa: B018


def test_the_cli_and_prediction_do_not_import_the_training_stack():
    # a fresh interpreter: this test process has long imported Lightning
    code = (
        "import sys, semdenoise.cli, semdenoise.predict, semdenoise.io; "
        "print(sorted(m for m in ('lightning', 'semdenoise.training') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "semdenoise", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "denoise" in done.stdout
