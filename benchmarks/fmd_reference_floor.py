"""How much of FMD's "noise" no single-capture denoiser can remove: the part the captures share.

FMD scores a denoised raw capture against the average of 50 captures of the same field.
If the sample changed over the 50 captures (bleaching, drift, focus), a capture differs
from that average by a component its own neighbours predict as well as the signal, and
which its sister captures share. A denoiser of one capture keeps it, whatever it does.

With three raw captures per field (``../shared/data/fmd_confocal_bpae_b``), d_i = raw_i −
average, and white capture noise independent between captures, the mean of d_i·d_j (i ≠ j,
the bias included) estimates that shared component's power c² (low by about n²/50: the
average holds the captures themselves). Per field the script prints
the total error power of a raw capture, c², the PSNR of a denoiser that removed all
but c² (a ceiling), and the lag-1 correlations of d_0, which white noise would keep near
0. Scores are on data range 255, as the benchmarks score FMD.

    cd benchmarks && python fmd_reference_floor.py --out results/issue16/fmd_reference_floor.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import tifffile

from denoiser_defaults import SHARED
from semdenoise.report import markdown_table

FIELDS = [*range(1, 19), 20]


def lag_correlation(image: np.ndarray, dy: int, dx: int) -> float:
    """Correlation of ``image`` with itself shifted by (dy, dx), dy, dx ≥ 0."""
    height, width = image.shape
    a = image[: height - dy, : width - dx].ravel()
    b = image[dy:, dx:].ravel()
    return float(np.corrcoef(a, b)[0, 1])


def field_row(field: int) -> dict:
    folder = SHARED / "fmd_confocal_bpae_b"
    raw = tifffile.imread(folder / f"fov{field:02d}_raw.tif").astype(np.float64)
    average = tifffile.imread(folder / f"fov{field:02d}_gt.tif").astype(np.float64)
    differences = raw - average
    total = float(np.mean(np.square(differences)))
    pairs = itertools.combinations(range(len(raw)), 2)
    shared = float(np.mean([np.mean(differences[i] * differences[j]) for i, j in pairs]))
    return {
        "field": field,
        "raw error power": round(total, 2),
        "raw PSNR": round(10 * np.log10(255.0**2 / total), 2),
        "shared power c²": round(shared, 2),
        "share of the error": round(shared / total, 3),
        "ceiling PSNR": round(10 * np.log10(255.0**2 / max(shared, 1e-6)), 2),
        "corr. x+1": round(lag_correlation(differences[0], 0, 1), 3),
        "corr. y+1": round(lag_correlation(differences[0], 1, 0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [field_row(f) for f in FIELDS]
    print(markdown_table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
