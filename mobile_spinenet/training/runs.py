"""Reading a run directory back: its config, label map and model (final weights, or the
latest checkpoint of an unfinished run)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from mobile_spinenet.data.records import LabelMap
from mobile_spinenet.training.config import TrainConfig, read_saved_config


@dataclass
class Run:
    run_dir: str
    config: TrainConfig
    label_map: LabelMap
    image_size: int

    @property
    def num_classes(self) -> int:
        return self.label_map.num_classes


def open_run(run_dir: str) -> Run:
    """Config and label map of ``run_dir``; a clear error when it is not a run."""
    from mobile_spinenet.zoo import get_model_info

    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise ValueError(f"{run_dir} is not a training run directory (no config.yaml)")
    config = read_saved_config(config_path)
    label_map = LabelMap.load(os.path.join(run_dir, "label_map.json"))
    return Run(run_dir, config, label_map, config.image_size or get_model_info(config.model).image_size)


def load_run_model(run: Run, model_fn=None, **build_overrides):
    """The run's Keras model with its trained weights: the zoo's float model, or ``model_fn()``
    (e.g. the quantization-aware model of a QAT run)."""
    from mobile_spinenet.backend import tf
    from mobile_spinenet.training.checkpoints import AtomicCheckpoints
    from mobile_spinenet.training.trainer import WEIGHTS_FILE
    from mobile_spinenet.zoo import build_model

    config = run.config
    kwargs = dict(image_size=run.image_size, num_classes=run.num_classes, activation=config.activation)
    kwargs.update(build_overrides)
    model = model_fn() if model_fn is not None else build_model(config.model, **kwargs)
    weights = os.path.join(run.run_dir, WEIGHTS_FILE)
    if os.path.isfile(weights):
        model.load_weights(weights)
        return model
    checkpoint = tf.train.Checkpoint(model=model)
    prefix = AtomicCheckpoints(os.path.join(run.run_dir, "checkpoints"), checkpoint).latest()
    if prefix is None:
        raise ValueError(f"{run.run_dir} has neither {WEIGHTS_FILE} nor a checkpoint")
    checkpoint.read(prefix).expect_partial()
    return model
