"""Running ``semdenoise`` commands from a benchmark, as a user's script would."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "semdenoise"]


def semdenoise(*args: object) -> str:
    """Run one CLI command and return what it printed; stop the benchmark if it fails."""
    command = [*CLI, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr.strip()}")
    return done.stdout


def train(*args: object) -> int:
    """``semdenoise train ...``; returns the number of steps it reports."""
    return int(re.search(r": (\d+) steps in", semdenoise("train", *args)).group(1))


def recorded_args(args: argparse.Namespace) -> dict:
    """A run's arguments for its JSON: paths relative as given, absolute ones by name only
    (a result file never records this machine's folders)."""
    return {
        key: (value.name if value.is_absolute() else str(value))
        if isinstance(value, Path)
        else value
        for key, value in vars(args).items()
    }
