"""Experiments: one module per paper table/figure, each writing a report."""
