"""Training: one module per training mode, sharing one runner."""

from semdenoise.training.n2v import train_n2v

__all__ = ["train_n2v"]
