"""Tables as markdown for people and JSON for scripts, written side by side."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (dicts sharing keys)."""
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(
    folder: str | Path, *, title: str, sections: dict[str, str], data: dict[str, Any]
) -> None:
    """Write ``report.md`` (title, then each section) and ``report.json`` (``data``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = [f"# {title}", ""]
    for heading, body in sections.items():
        text += [f"## {heading}", "", body, ""]
    (folder / "report.md").write_text("\n".join(text))
    (folder / "report.json").write_text(json.dumps(data, indent=2, default=float))
