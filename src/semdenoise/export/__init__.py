"""Export to other tools' formats: the BioImage Model Zoo package (bioimageio 0.5)."""

from semdenoise.export.package import export_model

__all__ = ["export_model"]
