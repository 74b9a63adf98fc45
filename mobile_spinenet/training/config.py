"""The training recipe as data: the base recipe of the model id's family
(``mobile_spinenet/configs/base/``, the paper's Sec. 5.1 recipe; the id names it in the
registry), then the id's own overrides (``configs/<id>.yaml``, optional), then an optional user
YAML, then command-line flags.
The resolved config is saved as ``config.yaml`` in the run directory."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import yaml

OPTIMIZERS = ("sgd", "adamw")
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")


@dataclass
class TrainConfig:
    """Everything that decides a training run."""

    model: str
    task: str = "detection"  # or "classification" (class-folder data, softmax cross-entropy, top-1/top-5)
    image_size: Optional[int] = None  # None: the model id's own size
    epochs: float = 600
    batch_size: int = 256
    learning_rate: Optional[float] = None  # None: lr_per_64_images * batch_size / 64
    lr_per_64_images: float = 0.08
    optimizer: str = "sgd"  # "sgd" (the paper's) or "adamw"; momentum is AdamW's beta_1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: float = 5.0
    schedule: str = "step"  # "step" or "cosine"
    step_decay_at: list = field(default_factory=lambda: [0.84, 0.92, 0.96])  # fractions of training
    step_decay_factors: list = field(default_factory=lambda: [0.1, 0.01, 0.001])
    focal_alpha: float = 0.25
    focal_gamma: float = 1.5
    huber_delta: float = 0.1
    box_loss_weight: float = 50.0
    label_smoothing: float = 0.1  # classification: softmax cross-entropy against smoothed one-hot labels
    positive_iou: float = 0.5  # an anchor with IoU >= this to a box learns it
    negative_iou: float = 0.4  # below this it is background; in between it is ignored
    jitter: list = field(default_factory=lambda: [0.4, 1.6])
    resize: str = "letterbox"  # or "stretch", for apps that feed the model through MediaPipe / the Task Library
    flip: bool = True
    mosaic: float = 0.0  # detection: share of training examples made a 2x2 mosaic of four images
    activation: Optional[str] = None  # None: the model id's own
    # how the detector is built and decoded where it differs from the kit's own (imported Model Garden
    # models record Model Garden's here): RetinaNet anchor size in strides (None: 4), SpineNet-Mobile's
    # squeeze-excite gate (None: sigmoid), the input normalisation the model expects ("kit" or
    # "imagenet", converted in the model's first layer), the head width (None: the id's), and boxes
    # clipped to the image before NMS (Model Garden's detection generator does)
    anchor_scale: Optional[float] = None
    ssd_min_scale: Optional[float] = None  # SSDLite: smallest anchor scale, share of the input (None: 0.2)
    se_gate: Optional[str] = None
    input_normalization: str = "kit"
    head_filters: Optional[int] = None
    clip_boxes: bool = False
    dropblock_keep_prob: Optional[float] = None
    stochastic_depth: float = 0.0
    sync_bn: Optional[bool] = None  # None: on whenever there is more than one replica
    bn_momentum: float = 0.99
    precise_bn_images: int = 256  # re-estimate BN statistics on this many train images (0: off)
    # float32, mixed_bfloat16, mixed_float16 or auto (training/precision.py); weights and exports stay float32
    precision: str = "float32"
    clip_grad_norm: Optional[float] = None
    init_from: Optional[str] = None  # a run directory whose weights start this run where layers match
    ema_decay: Optional[float] = None  # moving average of the weights (e.g. 0.999); None: off
    jit_compile: bool = False  # XLA for the forward and backward pass (same numbers up to rounding)
    fused_updates: bool = True  # optimizer and weight-average updates as one fused op per variable
    # (false: Keras's own per-variable ops; the same numbers up to rounding, slower on a CPU)
    strategy: str = "default"  # default | mirrored | multiworker | tpu
    tpu: str = ""
    seed: int = 0
    deterministic: bool = False
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    val_max_images: Optional[int] = None
    # validate (with its batch-norm re-estimate) and plot every N epochs and after the last; None:
    # as often as costs about 2% of the training's work (training/cadence.py)
    validate_every: Optional[int] = None
    # a searched SpineNet-Mobile backbone (`train --spec FILE`; mobile_spinenet.architecture's dict
    # form), kept in the run's config so that every command rebuilds it; None: the model id's own
    architecture: Optional[dict] = None

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return self.lr_per_64_images * self.batch_size / 64.0

    def validate(self) -> "TrainConfig":
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"config field schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if len(self.step_decay_at) != len(self.step_decay_factors):
            raise ValueError("config fields step_decay_at and step_decay_factors differ in length")
        if len(self.jitter) != 2 or not 0 < self.jitter[0] <= self.jitter[1]:
            raise ValueError(f"config field jitter must be [min, max] with 0 < min <= max, got {self.jitter}")
        if not 0 <= self.mosaic <= 1:
            raise ValueError(f"--mosaic must be in [0, 1], got {self.mosaic!r} (config field mosaic)")
        if self.mosaic and self.task != "detection":
            raise ValueError(f"--mosaic is for detection training, not --task {self.task}")
        from mobile_spinenet.training.precision import check_precision
        check_precision(self.precision)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"config field optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        from mobile_spinenet.registry import TASKS
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r} (config field task)")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"config field label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        from mobile_spinenet.anchors import SSDAnchors
        if self.ssd_min_scale is not None and not 0 < self.ssd_min_scale < SSDAnchors.max_scale:
            raise ValueError(f"--ssd-min-scale must be in (0, {SSDAnchors.max_scale}), got {self.ssd_min_scale!r} "
                             "(config field ssd_min_scale)")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"--ema-decay must be in (0, 1), got {self.ema_decay!r} (config field ema_decay)")
        from mobile_spinenet.data.images import INPUT_NORMALIZATIONS, check_resize
        check_resize(self.resize)
        if self.input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(f"config field input_normalization must be one of {', '.join(INPUT_NORMALIZATIONS)}, "
                             f"got {self.input_normalization!r}")
        if self.se_gate not in (None, "sigmoid", "hard_sigmoid"):
            raise ValueError(f"config field se_gate must be sigmoid or hard_sigmoid, got {self.se_gate!r}")
        if not 0 < self.negative_iou <= self.positive_iou <= 1:
            raise ValueError(f"config fields need 0 < negative_iou <= positive_iou <= 1, got negative_iou "
                             f"{self.negative_iou} and positive_iou {self.positive_iou}")
        for item in dataclasses.fields(self):  # every number finite, named where it entered
            value = getattr(self, item.name)
            numbers = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                flag = FLAGS.get(item.name, item.name)
                raise ValueError(f"{flag} must be a finite number, got {value!r}"
                                 + (f" (config field {item.name})" if flag != item.name else " (config field)"))
        for name, minimum, strict in POSITIVE_FIELDS:
            value = getattr(self, name)
            if value is not None and (value <= minimum if strict else value < minimum):
                flag = FLAGS.get(name, name)
                raise ValueError(f"{flag} must be {'>' if strict else '>='} {minimum}, got {value!r}"
                                 + (f" (config field {name})" if flag != name else ""))
        if self.architecture is not None:
            from mobile_spinenet.architecture import architecture_from_dict
            base = architecture_from_dict(self.architecture, "--spec").base
            if base != self.model:
                raise ValueError(f"--spec: the architecture's base is {base}, not --model {self.model}; "
                                 f"train it as --model {base} (or leave --model out)")
        if self.strategy not in ("default", "mirrored", "multiworker", "tpu"):
            raise ValueError(f"config field strategy must be default, mirrored, multiworker or tpu, "
                             f"got {self.strategy!r}")
        return self


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# (field, bound, strict): numeric fields that must exceed (strict) or reach their bound.
POSITIVE_FIELDS = (("epochs", 0, True), ("batch_size", 1, False), ("learning_rate", 0, True),
                   ("lr_per_64_images", 0, True), ("warmup_epochs", 0, False), ("weight_decay", 0, False),
                   ("image_size", 1, False), ("checkpoint_every_steps", 1, False), ("keep_checkpoints", 1, False),
                   ("precise_bn_images", 0, False), ("val_max_images", 1, False),
                   ("validate_every", 1, False), ("momentum", 0, False),
                   ("anchor_scale", 0, True), ("head_filters", 1, False))
# The command-line flag of a field, where its name differs (errors name what the user typed).
FLAGS = {"epochs": "--epochs", "batch_size": "--batch", "learning_rate": "--lr", "warmup_epochs": "--warmup-epochs",
         "weight_decay": "--weight-decay", "image_size": "--image-size", "checkpoint_every_steps": "--checkpoint-every",
         "val_max_images": "--val-max-images",
         "validate_every": "--validate-every", "ema_decay": "--ema-decay", "jit_compile": "--xla", "task": "--task",
         "precision": "--precision",
         "init_from": "--init", "mosaic": "--mosaic", "anchor_scale": "--anchor-scale",
         "ssd_min_scale": "--ssd-min-scale", "architecture": "--spec"}


def recipe_path(name_or_path: str) -> str:
    """A config file path, or the name of a bundled recipe (``configs/recipes/NAME.yaml``)."""
    if os.path.isfile(name_or_path):
        return name_or_path
    bundled = os.path.join(CONFIG_DIR, "recipes", f"{name_or_path}.yaml")
    return bundled if os.path.isfile(bundled) else name_or_path


def _read_yaml(path: str) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of field: value")
    if "mixed_precision" in data:  # the field before --precision (runs written then hold it)
        legacy = data.pop("mixed_precision")
        if legacy not in (True, False):
            raise ValueError(f"config file {path}: mixed_precision must be true or false, got {legacy!r}")
        data.setdefault("precision", "auto" if legacy else "float32")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ValueError(f"config file {path}: unknown field(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(FIELDS))}")
    return data


def base_recipe_path(recipe: str) -> str:
    """The base recipe a model id names (``configs/base/NAME.yaml``: one per family)."""
    return os.path.join(CONFIG_DIR, "base", f"{recipe}.yaml")


def task_config_path(task: str) -> str:
    """A task's changes to the model's recipe (optional: ``configs/tasks/<task>.yaml``)."""
    return os.path.join(CONFIG_DIR, "tasks", f"{task}.yaml")


def model_config_path(model_id: str) -> str:
    """Per-model overrides of the base recipe (optional: most ids have none)."""
    return os.path.join(CONFIG_DIR, f"{model_id}.yaml")


def load_config(model_id: Optional[str] = None, config_file: Optional[str] = None,
                overrides: Optional[dict] = None) -> TrainConfig:
    """The model id's recipe (its family's base, then its own YAML), then the task's changes
    (``configs/tasks``), then ``config_file``, then ``overrides`` (``None`` values are skipped)."""
    values = {}
    user = _read_yaml(recipe_path(config_file)) if config_file else {}
    model_id = model_id or user.get("model")
    if not model_id:
        raise ValueError("no model id: pass --model or set `model:` in the config file")
    from mobile_spinenet.registry import family_of, get_model_info
    family = family_of(model_id)  # clear error for unknown ids
    info = get_model_info(model_id)
    values.update(_read_yaml(base_recipe_path(info.recipe)))
    if os.path.isfile(model_config_path(model_id)):
        values.update(_read_yaml(model_config_path(model_id)))
    task = (overrides or {}).get("task") or user.get("task")
    if isinstance(task, str) and os.path.isfile(task_config_path(task)):
        values.update(_read_yaml(task_config_path(task)))
    values["image_size"] = info.image_size  # the id's own size, unless the user's file or a flag says otherwise
    values.update(user)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values["model"] = model_id
    config = TrainConfig(**values).validate()
    if config.task not in family.size_multiple:  # e.g. a classifier of a detector-only family, before any work
        raise ValueError(f"{model_id} ({family.display}) has no {config.task} model; it builds: "
                         f"{', '.join(family.size_multiple)}")
    # an option the model's family ignores is refused here, before any work, not dropped in the build
    family.check_options(model_id, activation=config.activation, stochastic_depth=config.stochastic_depth,
                         se_gate=config.se_gate, head_filters=config.head_filters, anchor_scale=config.anchor_scale,
                         ssd_min_scale=config.ssd_min_scale, spec=config.architecture)
    return config


def save_config(config: TrainConfig, path: str) -> None:
    from mobile_spinenet.io_utils import write_atomically
    write_atomically(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


def read_saved_config(path: str) -> TrainConfig:
    return TrainConfig(**_read_yaml(path)).validate()
