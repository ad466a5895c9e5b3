"""A probe, not a feature: would Neighbor2Neighbor train our U-Net better than N2V per step?

Neighbor2Neighbor (Huang et al., CVPR 2021) needs no blind spot: from each noisy crop it
draws two half-size images, one pixel each from every 2x2 cell (two different pixels, so
for pixel-independent noise their noises are independent), trains the network to map one
to the other (Noise2Noise), and regularises by the same pair drawn from the network's
output on the whole crop. Every pixel carries loss (N2V: one in 25), and the trained
network denoises in one pass, where the learned noise model's posterior needs 16
blind-spot passes (predict/blind.py).

This trains the library's default U-Net (depth 3, 16 channels, direct output, BatchNorm)
that way for a fixed number of steps on the development data of ``denoiser_defaults.py``
(never a standard test set) and scores the one-pass output; compare with that script's
rows for the N2V defaults at equal CPU time (steps x seconds per step, measured here).

    cd benchmarks && python neighbor2neighbor_probe.py --data fmd --steps 500 --seeds 0 \
        --out results/issue16/neighbor2neighbor_fmd.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cli_runs import recorded_args
from denoiser_defaults import load, scores
from semdenoise.config import UNetConfig
from semdenoise.models.normalization import Normalization
from semdenoise.report import markdown_table
from semdenoise.training.n2v import seeded_unet

# the 8 ordered pairs of edge-adjacent pixels in a 2x2 cell, cells read row by row
NEIGHBOUR_PAIRS = torch.tensor([(0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2)])


def subsample(images: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two half-size images of (B, C, H, W) ``images`` (H, W even): per 2x2 cell,
    the pixels of pair ``choice`` (B, H/2, W/2), the first and the second."""
    b, c, h, w = images.shape
    cells = images.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
    cells = cells.reshape(b, c, h // 2, w // 2, 4)
    pairs = NEIGHBOUR_PAIRS[choice]  # (B, H/2, W/2, 2)
    picked = [
        torch.gather(cells, 4, pairs[..., k][:, None, ..., None].expand(b, c, -1, -1, 1))[..., 0]
        for k in (0, 1)
    ]
    return picked[0], picked[1]


def random_crops(bank, count, side, generator) -> torch.Tensor:
    """(count, 1, side, side) random crops of the normalised images, each in one of the 8
    rotations/flips."""
    crops = []
    for _ in range(count):
        image = bank[int(torch.randint(len(bank), (1,), generator=generator))]
        y = int(torch.randint(image.shape[0] - side + 1, (1,), generator=generator))
        x = int(torch.randint(image.shape[1] - side + 1, (1,), generator=generator))
        turns = int(torch.randint(4, (1,), generator=generator))
        crop = torch.rot90(image[y : y + side, x : x + side], turns)
        crops.append(crop.flip(-1) if torch.rand(1, generator=generator) < 0.5 else crop)
    return torch.stack(crops)[:, None]


def train(kind: str, steps: int, seed: int, crop: int, batch: int) -> dict:
    train_images, noisy, clean = load(kind)
    norm = Normalization.fit(train_images)
    bank = [torch.from_numpy(norm.normalize(t).astype(np.float32)) for t in train_images]
    net = seeded_unet(UNetConfig(), seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=1e-5)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for step in range(steps):
        images = random_crops(bank, batch, crop, generator)
        choice = torch.randint(8, (batch, crop // 2, crop // 2), generator=generator)
        first, second = subsample(images, choice)
        with torch.no_grad():  # the regulariser's target: the output on the whole crop
            net.eval()
            out_first, out_second = subsample(net(images), choice)
            net.train()
        difference = net(first) - second
        gamma = 1.0 + step / steps  # the paper's ramp of the regulariser, 1 to 2
        loss = difference.square().mean() + gamma * (
            (difference - (out_first - out_second)).square().mean()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    seconds = time.perf_counter() - started
    net.eval()
    with torch.no_grad():
        denoised = [
            norm.denormalize(net(torch.from_numpy(norm.normalize(n))[None, None])[0, 0].numpy())
            for n in noisy
        ]
    return {
        "data": kind,
        "seed": seed,
        "steps": steps,
        "crop": f"{crop}x{batch}",
        **scores(clean, denoised),
        "s/step": round(seconds / steps, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["em", "bsd", "fmd"], required=True)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        rows.append(train(args.data, args.steps, seed, args.crop, args.batch))
        print(rows[-1], flush=True)
    print(markdown_table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": recorded_args(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
