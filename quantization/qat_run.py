"""``qat``: fine-tune a trained float run quantization-aware (what ``mobile-spinenet qat`` does).

The QAT directory is a run directory like any other (config, label map, checkpoints, metrics,
curves, resume), plus ``qat.json`` naming the float run it started from, so ``export`` knows to
rebuild the quantization-aware model and convert it with its learned ranges."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Optional

from mobile_spinenet.io_utils import write_json_atomically

QAT_FILE = "qat.json"
CALIBRATION_IMAGES = 32


def is_qat_run(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, QAT_FILE))


def build_qat_model(run, float_model=None, calibration=None):
    """The quantization-aware model of float ``run`` (its quantizable form, annotated).
    ``calibration`` (batches of images) sets the quantizer ranges before training starts."""
    from mobile_spinenet.quantization.qat import calibrate_ranges, quantizable_model, quantize_aware
    from mobile_spinenet.training.runs import load_run_model

    float_model = float_model if float_model is not None else load_run_model(run)
    unrolled = quantizable_model(run.config.model, float_model, image_size=run.image_size,
                                 num_classes=run.num_classes, activation=run.config.activation)
    model = quantize_aware(unrolled)
    if calibration is not None:
        calibrate_ranges(model, calibration)
    return model


def load_qat_model(qat_dir: str):
    """``(float_run, qat_model)`` of a QAT directory, with its fine-tuned weights (or latest checkpoint)."""
    from mobile_spinenet.training.runs import load_run_model, open_run

    with open(os.path.join(qat_dir, QAT_FILE)) as f:
        float_run = open_run(json.load(f)["from"])
    qat = open_run(qat_dir)
    return qat, load_run_model(qat, model_fn=lambda: build_qat_model(float_run))


def qat(from_run: str, data: str, out: str, epochs: float = 1.0, learning_rate: Optional[float] = None,
        batch_size: Optional[int] = None, val: Optional[str] = None, resume: bool = False,
        show_progress: bool = True) -> dict:
    """Fine-tune ``from_run`` quantization-aware on ``data`` for ``epochs`` into ``out``.

    The learning rate defaults to a tenth of the float run's, on a cosine schedule without
    warm-up; everything else (loss, augmentation, BN) is the float run's recipe."""
    from mobile_spinenet.data.pipeline import eval_dataset
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.runs import open_run, sources_record
    from mobile_spinenet.training.trainer import Trainer

    run = open_run(from_run)
    if is_qat_run(from_run):
        raise ValueError(f"{from_run} is already a QAT run; pass the float run it came from")
    train = read_dataset(data, label_map=run.label_map)
    val_data = read_dataset(val, label_map=run.label_map) if val else None
    base = run.config
    config = replace(base, epochs=epochs, warmup_epochs=0.0, schedule="cosine",
                     learning_rate=learning_rate if learning_rate is not None else base.resolved_learning_rate() / 10,
                     batch_size=batch_size or base.batch_size, image_size=run.image_size).validate()

    def model_fn(num_classes):
        if num_classes != run.num_classes:
            raise ValueError(f"{data} has {num_classes} classes, the float run {from_run} {run.num_classes}")
        batches = (images for images, _, _ in eval_dataset(train, run.image_size, 8, train.records[:CALIBRATION_IMAGES]))
        return build_qat_model(run, calibration=batches)

    records = {QAT_FILE: {"from": os.path.abspath(from_run)}, **sources_record(data, val)}
    trainer = Trainer(config, train, out, val_data, model_fn=model_fn, show_progress=show_progress, records=records)
    return trainer.fit(resume=resume)
