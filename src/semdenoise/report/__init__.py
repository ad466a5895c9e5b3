"""Reports: markdown tables, JSON with every number, PNG figures."""

from semdenoise.report.figures import save_bars, save_comparison, save_curves, save_panel
from semdenoise.report.tables import markdown_table, write_report

__all__ = [
    "markdown_table",
    "save_bars",
    "save_comparison",
    "save_curves",
    "save_panel",
    "write_report",
]
