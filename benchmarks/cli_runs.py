"""Running ``semdenoise`` commands from a benchmark, as a user's script would."""

from __future__ import annotations

import re
import subprocess
import sys

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
