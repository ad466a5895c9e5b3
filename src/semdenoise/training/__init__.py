"""Training: one module per training mode, sharing one runner."""

from semdenoise.training.joint import train_joint
from semdenoise.training.n2v import train_n2v
from semdenoise.training.seg import train_seg

__all__ = ["train_joint", "train_n2v", "train_seg"]
