"""The README as written: its first commands, its examples run as shown, its links resolve.

The examples to run are the fenced blocks right under ``<!-- test: cli -->`` and
``<!-- test: python -->``; the commands run through the real entry point in-process,
as in ``test_cli.py``, in a temporary folder.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import semdenoise as sd

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

FIRST_BLOCK = (
    "make demo    # creates .venv, installs, runs `reproduce plaques --quick`, "
    "writes reports/demo/\n"
    "make test    # creates .venv, installs, runs ruff and the test suite\n"
)
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")

# What the README's examples say they write: `synth plaques --n 4 --size 64`.
SHAPE = (4, 64, 64)
STEPS = 20


def marked_block(mark: str) -> str:
    """The fenced block on the line after ``<!-- test: MARK -->``."""
    found = re.search(
        rf"^<!-- test: {mark} -->\n```[^\n]*\n(.*?)^```[ \t]*$", README.read_text(), re.M | re.S
    )
    assert found, f"README.md has no fenced block under <!-- test: {mark} -->"
    return found.group(1)


def commands(block: str) -> list[list[str]]:
    """Each non-empty line as arguments, comments dropped; every line must be a command."""
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    lines = [args for args in lines if args]
    assert lines and all(args[0] == "semdenoise" for args in lines), block
    return [args[1:] for args in lines]


def run_all(cli, args_list: list[list[str]]) -> None:
    for args in args_list:
        code, _, err = cli(*args)
        assert code == 0, f"semdenoise {' '.join(args)}: {err}"


def test_readme_opens_with_the_two_make_commands():
    text = README.read_text()
    blocks = FENCED.findall(text)
    assert blocks and blocks[0] == FIRST_BLOCK
    before = text[: text.index("```")].strip().splitlines()
    assert len(before) == 1 and before[0].startswith("# ")


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move reference to docs/"


def test_cli_example_runs_as_written(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_all(cli, commands(marked_block("cli")))

    names = {p.name for p in (tmp_path / "data").iterdir()}
    assert {"clean.tif", "noisy.tif", "masks.tif", "instances.tif", "meta.json"} <= names
    noisy = tifffile.imread(tmp_path / "data" / "noisy.tif")
    masks = tifffile.imread(tmp_path / "data" / "masks.tif")
    assert noisy.shape == masks.shape == SHAPE and masks.any()

    model = torch.load(tmp_path / "n2v.pt", weights_only=True)
    assert model["training"]["steps"] == STEPS

    denoised = tifffile.imread(tmp_path / "denoised.tif")
    assert denoised.shape == SHAPE and denoised.dtype == np.float32
    assert np.isfinite(denoised).all() and not np.allclose(denoised, noisy)

    checks = json.loads((tmp_path / "checks.json").read_text())
    per_image = [row for row in checks["denoised"] if row["image"] != "mean"]
    assert len(per_image) == SHAPE[0]
    assert all(np.isfinite(row["blind-spot loss"]) for row in checks["denoised"])


def test_python_example_runs_as_written(cli, tmp_path, monkeypatch):
    """It continues from the CLI example's synthetic data, so that step runs first."""
    monkeypatch.chdir(tmp_path)
    run_all(cli, [args for args in commands(marked_block("cli")) if args[0] == "synth"])

    namespace: dict = {"__name__": "readme_example"}
    exec(compile(marked_block("python"), "README.md", "exec"), namespace)

    assert namespace["noisy"].shape == namespace["denoised"].shape == SHAPE
    assert isinstance(namespace["model"], sd.TrainedModel)
    written = tifffile.imread(tmp_path / "denoised_py.tif")
    assert written.dtype == np.float32
    np.testing.assert_array_equal(written, namespace["denoised"])
    saved = torch.load(tmp_path / "n2v_py.pt", weights_only=True)
    assert saved["training"]["steps"] == STEPS


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    text = FENCED.sub("", path.read_text())
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def relative_links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCED.sub("", path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    links = relative_links(page)
    for target in links:
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.exists(), f"{page.name}: link {target!r} points to nothing"
        if anchor:
            assert resolved.suffix == ".md" and anchor in heading_anchors(resolved), (
                f"{page.name}: link {target!r}: no such heading"
            )


def test_docs_index_and_readme_link_every_page():
    pages = {p.name for p in DOCS} - {"README.md"}
    index = {Path(t).name for t in relative_links(ROOT / "docs" / "README.md")}
    readme = {Path(t).name for t in relative_links(README)}
    assert pages <= index and pages <= readme
    assert {"LICENSE", "CITATION.cff"} <= readme
