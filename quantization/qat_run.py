"""``qat``: fine-tune a trained float run quantization-aware (what ``mobile-spinenet qat`` does).

The QAT directory is a run directory like any other (config, label map, checkpoints, metrics,
curves, resume), plus ``qat.json`` naming the float run it started from (a record only: the
directory is self-contained), so ``export`` knows to rebuild the quantization-aware model and
convert it with its learned ranges."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional


from mobile_spinenet.training.runs import QAT_FILE, QAT_MODEL_FILE, register_model_form


def build_qat_model(run, freeze_bn: bool = False, float_layers: tuple = ()):
    """The quantization-aware model of float ``run`` with its trained weights (ranges uncalibrated);
    ``freeze_bn`` keeps the BN layers as trained (:func:`~mobile_spinenet.quantization.qat.freeze_batch_norm`),
    the layers matching ``float_layers`` stay float."""
    from mobile_spinenet.quantization.qat import quantization_aware_copy
    from mobile_spinenet.training.runs import load_run_model

    return quantization_aware_copy(run.config.model, load_run_model(run), freeze_bn, float_layers,
                                   **run.build_kwargs())


def _qat_form(qat):
    """The quantization-aware model of QAT run ``qat`` with its fine-tuned weights (or latest
    checkpoint). Self-contained: the QAT directory's own files give the model's structure and its
    weights replace every float one, so the float run it started from may be moved or deleted.

    The structure comes from the run's :data:`QAT_MODEL_FILE` in one deserialisation; a run
    written before that file existed is rebuilt through tfmot from its config and label map."""
    from mobile_spinenet.quantization.qat import quantize_aware
    from mobile_spinenet.training.runs import load_run_model
    from mobile_spinenet.zoo import build_model

    if not qat.is_qat:
        raise ValueError(f"{qat.run_dir} is a float run: fine-tune it with `mobile-spinenet qat` for a \"qat\" model")
    if os.path.isfile(qat.path(QAT_MODEL_FILE)):
        return load_run_model(qat, model_fn=lambda: read_qat_model_structure(qat.path(QAT_MODEL_FILE)))

    def structure():  # any float weights do: the QAT weights are loaded over them
        return quantize_aware(build_model(qat.config.model, share_head_convs=False, **qat.build_kwargs()))

    return load_run_model(qat, model_fn=structure)


def read_qat_model_structure(path: str):
    """The untrained quantization-aware model that ``path`` (a :data:`QAT_MODEL_FILE`) describes."""
    import json

    from mobile_spinenet.quantization.qat import qat_model_from_structure

    try:
        with open(path) as f:
            structure = json.load(f)
        return qat_model_from_structure(structure)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{path} is not a quantization-aware model structure written by the kit "
                         f"({type(error).__name__}: {str(error)[:200]})") from None


def _quantizable_form(run):
    """The float run's trained weights in the unrolled form the int8 converter and QAT take."""
    from mobile_spinenet.quantization.qat import quantizable_model

    return quantizable_model(run.config.model, run.model("float"), **run.build_kwargs())


register_model_form("qat", _qat_form)
register_model_form("quantizable", _quantizable_form)


def load_any_run(run_dir: str):
    """``(run, keras_model, is_qat)``: the run and its model in its own form (float, or the
    quantization-aware model of a QAT run): what export, eval and predict load."""
    from mobile_spinenet.training.runs import open_run

    run = open_run(run_dir)
    return run, run.model(), run.is_qat


# The QAT fine-tune's default rate as a share of the float run's, per optimizer. A tenth suits SGD
# (the paper's recipe); AdamW's steps are scale-free, and a tenth of cpu_fast's 0.002 cost 1.3 AP
# before any int8 where a hundredth cost 0.7 (docs/quantization.md).
QAT_RATE_SHARE = {"sgd": 0.1, "adamw": 0.01}


def qat_learning_rate(config) -> float:
    """The default QAT learning rate for a float run trained with ``config``."""
    return config.resolved_learning_rate() * QAT_RATE_SHARE[config.optimizer]


@dataclass(frozen=True)
class QatOptions:
    """How a float run is fine-tuned quantization-aware."""

    epochs: float = 1.0
    learning_rate: Optional[float] = None  # default: qat_learning_rate(the float run's config)
    batch_size: Optional[int] = None  # default: the float run's
    val: Optional[str] = None  # validation set, scored after every epoch
    seed: Optional[int] = None  # data order, augmentation and initial state; default: the float run's
    freeze_bn: bool = False  # keep the float run's BN layers as trained (and no precise BN at the end)
    float_layers: tuple = ()  # layer-name patterns left float (mixed precision; qat.float_layer_names)
    resume: bool = False
    show_progress: bool = True


def qat(from_run: str, data: str, out: str, options: Optional[QatOptions] = None) -> dict:
    """Fine-tune ``from_run`` quantization-aware on ``data`` into ``out`` (see :class:`QatOptions`).

    The learning rate defaults to :func:`qat_learning_rate`, on a cosine schedule without
    warm-up; everything else (loss, augmentation, BN) is the float run's recipe."""
    options = options or QatOptions()
    epochs, learning_rate, batch_size = options.epochs, options.learning_rate, options.batch_size
    val, resume, show_progress = options.val, options.resume, options.show_progress
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.progress import elapsed
    from mobile_spinenet.quantization.calibration import DEFAULT_IMAGES, MEDIAN_BATCH_SIZE, detection_batches
    from mobile_spinenet.quantization.qat import calibrate_ranges, qat_model_structure
    from mobile_spinenet.training.runs import open_run, sources_record
    from mobile_spinenet.training.trainer import Trainer

    run = open_run(from_run)
    if run.config.task != "detection":
        raise ValueError(f"{from_run} is a {run.config.task} run: QAT fine-tunes detectors only so far "
                         f"(export it with --quant int8 for post-training int8)")
    if run.is_qat:
        raise ValueError(f"{from_run} is already a QAT run; pass the float run it came from")
    train = read_dataset(data, label_map=run.label_map)
    val_data = read_dataset(val, label_map=run.label_map) if val else None
    base = run.config
    # No weight average (the quantizer ranges follow the live weights, not an average of them) and
    # no XLA (fake-quant training under XLA is untested here) and no 16-bit compute (fake quantization
    # in bfloat16 is untested too; the quantizer ranges are float32) in the short QAT fine-tune.
    config = replace(base, epochs=epochs, warmup_epochs=0.0, schedule="cosine", ema_decay=None, jit_compile=False,
                     precision="float32",
                     precise_bn_images=0 if options.freeze_bn else base.precise_bn_images,
                     learning_rate=learning_rate if learning_rate is not None else qat_learning_rate(base),
                     batch_size=batch_size or base.batch_size, image_size=run.image_size,
                     seed=base.seed if options.seed is None else options.seed).validate()

    def model_fn(num_classes):
        if num_classes != run.num_classes:
            raise ValueError(f"{data} has {num_classes} classes, the float run {from_run} {run.num_classes}")
        batches = detection_batches(train, run.image_size, base.resize, show_progress)(
            MEDIAN_BATCH_SIZE, DEFAULT_IMAGES["median"])
        with elapsed(f"building the quantization-aware {run.config.model} (tfmot)", enabled=show_progress):
            model = build_qat_model(run, freeze_bn=options.freeze_bn, float_layers=options.float_layers)
        calibrate_ranges(model, batches)
        return model

    records = {QAT_FILE: {"from": os.path.abspath(from_run), "freeze_bn": options.freeze_bn,
                          "float_layers": list(options.float_layers)},
               **sources_record(data, val)}
    trainer = Trainer(config, train, out, val_data, model_fn=model_fn, show_progress=show_progress, records=records)
    trainer.records[QAT_MODEL_FILE] = qat_model_structure(trainer.model)  # export and eval load it without tfmot
    return trainer.fit(resume=resume)
