"""Train CAREamics Noise2Void on .npy images and predict others: the CAREamics side of
``careamics_compare.py``, run by it inside the CAREamics venv (never imports semdenoise).

    .careamics-venv/bin/python careamics_worker.py JOB.json RESULT.json

JOB.json holds ``train`` (a .npy of shape (S, Y, X), float32), ``predict`` (a list of
.npy files, each (Y, X)), ``out_dir`` (where the predictions go, same names),
``work_dir`` (CAREamics' checkpoints and logs), ``steps``, ``seed``, ``batch_size``,
``patch_size`` and ``threads``. RESULT.json gets the training and prediction seconds,
the steps and epochs Lightning ran, the prediction files and CAREamics' configuration.

Everything else is CAREamics' N2V default (``create_advanced_n2v_config``): its UNet
(depth 2, 32 initial channels), 0.2 % of each patch's pixels masked with uniform
replacement from an 11x11 window, flips and 90-degree rotations, mean/std
normalisation, Adam with torch's default learning rate and ReduceLROnPlateau, 8
validation patches split off the training data, its checkpointing. Training stops after
``steps`` optimiser steps (Lightning's ``max_steps``), whatever the epochs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(job_path: str, result_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    import torch

    torch.set_num_threads(int(job["threads"]))
    import numpy as np
    from careamics import CAREamist
    from careamics.config.factories.n2v_factory import create_advanced_n2v_config

    train = np.load(job["train"]).astype(np.float32)
    config = create_advanced_n2v_config(
        experiment_name=f"n2v_seed{job['seed']}",
        data_type="array",
        axes="SYX",
        patch_size=[job["patch_size"], job["patch_size"]],
        batch_size=job["batch_size"],
        num_epochs=1_000_000,  # the step budget below ends training
        trainer_params={"max_steps": job["steps"]},
        seed=job["seed"],
    )
    careamist = CAREamist(config, work_dir=job["work_dir"], enable_progress_bar=False)
    started = time.perf_counter()
    careamist.train(train_data=train)
    train_seconds = time.perf_counter() - started

    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [np.load(p).astype(np.float32) for p in job["predict"]]
    started = time.perf_counter()
    predictions = []
    for image in images:
        predicted, _ = careamist.predict(pred_data=image, axes="YX")
        predictions.append(np.asarray(predicted[0], dtype=np.float32).reshape(image.shape))
    predict_seconds = time.perf_counter() - started
    written = []
    for path, predicted in zip(job["predict"], predictions, strict=True):
        target = out_dir / Path(path).name
        np.save(target, predicted)
        written.append(str(target))

    import careamics

    result = {
        "train seconds": round(train_seconds, 2),
        "predict seconds": round(predict_seconds, 2),
        "steps": int(careamist.trainer.global_step),
        "epochs": int(careamist.trainer.current_epoch),
        "predictions": written,
        "careamics": careamics.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": json.loads(config.model_dump_json()),
    }
    Path(result_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:3])
