"""A run directory: reading it back (config, label map, model from the final weights or the
latest checkpoint of an unfinished run) and locking it while one process writes to it."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass, replace
from typing import Optional

from mobile_spinenet.data.records import LabelMap
from mobile_spinenet.training.config import TrainConfig, read_saved_config


log = logging.getLogger("mobile_spinenet.runs")
LOCK_FILE = "run.lock"
WEIGHTS_FILE = "model.weights.h5"  # the final weights of a finished run
RUN_FILE = "run.json"  # what a finished run records: steps, epochs, last metrics row, config
SOURCES_FILE = "sources.json"  # the data a run was trained on (export calibrates and verifies with it)
QAT_FILE = "qat.json"  # present in a quantization-aware fine-tune: names the float run it started from
# A QAT run's Keras model structure (tfmot's wrappers and quantizer settings included): the model is
# rebuilt from it in one pass instead of through tfmot's clones and layout transforms.
QAT_MODEL_FILE = "qat_model.json"
FLOAT_FORM = "float"
# How a run's model is rebuilt in forms that need layers above this one (quantization.qat_run
# registers "quantizable" and "qat" when it is imported): form name -> loader(run) -> Keras model.
_MODEL_FORMS: dict = {}


def register_model_form(form: str, loader) -> None:
    """Teach :meth:`Run.model` a form (``loader(run)`` returns the run's model in that form)."""
    _MODEL_FORMS[form] = loader


def sources_record(train: str, val: Optional[str]) -> dict:
    """``{SOURCES_FILE: {...}}`` for ``Trainer(records=...)``: written only once the run is accepted."""
    return {SOURCES_FILE: {"train": os.path.abspath(train), "val": os.path.abspath(val) if val else None}}


def read_sources(run_dir: str) -> dict:
    """``{"train": path, "val": path or None}`` of a run, or ``{}`` when it did not record them."""
    path = os.path.join(run_dir, SOURCES_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


# which of the run's recorded data (sources.json) a flag's default reads, first found first, and
# how the error names it
DATA_DEFAULTS = {"--calib": (("train",), "training data"), "--val": (("val", "train"), "val or training data")}


def data_given(path: Optional[str], what: str, run_dir: str) -> str:
    """``path`` (the flag ``what``'s value), else the data the run recorded for it, or a one-line error."""
    if path:
        return path
    keys, needed = DATA_DEFAULTS[what]
    sources = read_sources(run_dir)
    recorded = next((sources[key] for key in keys if sources.get(key)), None)
    if not recorded:
        raise ValueError(f"{what}: {run_dir} records no {needed} ({SOURCES_FILE}, which a packed "
                         f"checkpoint leaves out); pass {what} explicitly")
    return recorded


class RunDirectoryBusy(ValueError):
    """Another live process holds the run directory."""


class RunLock:
    """An exclusive lock on a run directory while a process trains into it.

    ``run.lock`` holds the owner's pid and host; the lock itself is a ``flock`` on that file,
    which the kernel drops when the owner dies (even by kill -9), so a lock left by a dead
    process is taken over, with a message naming it, and a live owner is never displaced."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.fd = None

    def owner(self) -> str:
        try:
            with open(self.path) as f:
                return f.read().strip() or "an unknown process"
        except OSError:
            return "an unknown process"

    def acquire(self) -> "RunLock":
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirectoryBusy(f"{os.path.dirname(self.path)} is in use by {self.owner()} "
                                   f"({self.path}); wait for it to finish or choose another --out") from None
        previous = os.read(fd, 200).decode(errors="replace").strip()
        if previous:
            log.warning("taking over the lock of %s, which is no longer running (%s)", previous, self.path)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # an empty lock file: nobody to take over from
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def finished_record(run_dir: str) -> Optional[dict]:
    """``run.json`` of the finished run in ``run_dir`` (final weights written), else None."""
    run_file, weights = os.path.join(run_dir, RUN_FILE), os.path.join(run_dir, WEIGHTS_FILE)
    if not (os.path.isfile(run_file) and os.path.isfile(weights)):
        return None
    with open(run_file) as f:
        return json.load(f)


def weights_digest(run_dir: str) -> str:
    """The first 16 hex digits of the SHA-256 of a finished run's weights file: names these weights
    in records measured from them (``bench seeds``), so such a record is not applied to a run
    that was retrained since."""
    import hashlib

    path = os.path.join(run_dir, WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir} has no final weights ({WEIGHTS_FILE} missing): is the run finished?")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# Trained weights beyond this magnitude mean a blown-up run (kernels, BN scales and biases of healthy
# detectors stay within ~1e2; a 2-step run at lr 1000 reached 4e7).
MAX_WEIGHT_MAGNITUDE = 1e4


def unhealthy_weights(variables) -> Optional[str]:
    """None when every variable is finite and at most ``MAX_WEIGHT_MAGNITUDE`` in magnitude (the
    trainable ones; statistics such as BN variances may be larger), else what is wrong, naming the
    first variable."""
    import numpy as np

    for variable in variables:
        values = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        if values.dtype.kind != "f":
            continue
        if not np.isfinite(values).all():
            return f"{variable.name} is not finite"
        if getattr(variable, "trainable", True) and values.size and np.abs(values).max() > MAX_WEIGHT_MAGNITUDE:
            return f"{variable.name} reached {np.abs(values).max():.3g} (more than {MAX_WEIGHT_MAGNITUDE:g})"
    return None


def has_checkpoints(run_dir: str) -> bool:
    from mobile_spinenet.training.checkpoints import LATEST
    return os.path.isfile(os.path.join(run_dir, CHECKPOINTS_DIR, LATEST))


def run_files_in(run_dir: str) -> list:
    """The files of ``RUN_MARKERS`` that ``run_dir`` holds: a run (finished, packed, or stopped before
    its first checkpoint) is recognised by any of them, not by its checkpoints alone."""
    return [name for name in RUN_MARKERS if os.path.isfile(os.path.join(run_dir, name))]


def refuse_to_restart(run_dir: str) -> None:
    """A new (not ``--resume``) run may not start over an existing run's files: its checkpoints, or
    the weights, records and logs of a finished or packed one."""
    if has_checkpoints(run_dir):
        raise ValueError(f"{run_dir} already holds checkpoints; pass --resume to continue it, or choose another --out")
    found = run_files_in(run_dir)
    if found:
        raise ValueError(f"{run_dir} already holds a run ({', '.join(found)}); choose another --out (its files are "
                         f"never replaced), or --resume to continue it if it is unfinished")


CONFIG_FILE = "config.yaml"
LABEL_MAP_FILE = "label_map.json"
DATA_ISSUES_FILE = "data_issues.txt"
CHECKPOINTS_DIR = "checkpoints"
# the files by which a folder is recognised as a run directory (besides checkpoints/latest)
RUN_MARKERS = (WEIGHTS_FILE, RUN_FILE, CONFIG_FILE, "metrics.csv", LABEL_MAP_FILE)


@dataclass
class Run:
    """A run directory and what it holds. Its files are written here (``create``: config, label
    map, records such as ``sources.json`` and ``qat.json``, the data report; ``write_final``:
    the weights and ``run.json``), the checkpoints by the trainer into ``checkpoints_dir``, the
    logs by :class:`~mobile_spinenet.training.logs.RunLog`. Its model, with the trained weights,
    comes from :meth:`model` in each form: ``"float"`` here, ``"quantizable"`` and ``"qat"`` once
    ``mobile_spinenet.quantization.qat_run`` is imported (they need tfmot, a layer above this one)."""

    run_dir: str
    config: TrainConfig
    label_map: LabelMap
    image_size: int

    @property
    def num_classes(self) -> int:
        return self.label_map.num_classes

    @property
    def checkpoints_dir(self) -> str:
        return os.path.join(self.run_dir, CHECKPOINTS_DIR)

    def path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def build_kwargs(self) -> dict:
        """What rebuilds this run's model (``zoo.build_model`` / ``qat.quantizable_model`` keywords)."""
        return build_kwargs_of(self.config, self.image_size, self.num_classes)

    def anchors(self):
        """The anchor boxes its detector's outputs are decoded against (in model pixels)."""
        from mobile_spinenet.zoo import anchor_settings, model_anchors
        return model_anchors(self.config.model, self.image_size, **anchor_settings(self.config))

    def nms_config(self, **settings):
        """The post-processing settings of its detector, ``settings`` (NMSConfig fields) over them."""
        from mobile_spinenet.postprocess import NMSConfig
        return NMSConfig(**{"clip_size": self.image_size if self.config.clip_boxes else None, **settings})

    @property
    def is_qat(self) -> bool:
        """A quantization-aware fine-tune (``mobile-spinenet qat``), whose own form is ``"qat"``."""
        return os.path.isfile(self.path(QAT_FILE))

    @property
    def own_form(self) -> str:
        return "qat" if self.is_qat else FLOAT_FORM

    def at_input_size(self, image_size: int) -> "Run":
        """This run with its float model built for ``image_size`` input instead of the size it was
        trained at (the same weights: every layer is convolutional); model, anchors and clipping
        follow. A QAT run is refused (its quantization-aware structure is stored at one size), and so
        is a Mask R-CNN run (built at other sizes by nothing the kit has checked)."""
        from mobile_spinenet.registry import INSTANCE_SEGMENTATION, check_image_size

        if self.is_qat:
            raise ValueError(f"{self.run_dir} is a QAT run, fixed at {self.image_size} px; give its float run "
                             f"for another input size")
        if self.config.task == INSTANCE_SEGMENTATION:
            raise ValueError(f"{self.run_dir} is a Mask R-CNN run: only detection and classification runs are "
                             f"built for another input size")
        check_image_size(self.config.model, image_size, self.config.task)
        self._warn_of_untrained_taps(image_size)
        return replace(self, image_size=image_size)

    def _warn_of_untrained_taps(self, image_size: int) -> None:
        from mobile_spinenet.registry import get_model_info
        from mobile_spinenet.ssdlite import maps_grown_from_one_pixel, ssd_feature_sizes

        if get_model_info(self.config.model).kind != "ssdlite":
            return
        grown = maps_grown_from_one_pixel(self.image_size, image_size)
        if grown:
            sides = ssd_feature_sizes(image_size)
            log.warning("%s was trained at %d px, where its feature map(s) %s of %d are 1x1, so the 3x3 kernels "
                        "reading them trained only their centre tap; at %d px they are %s and the untrained taps "
                        "feed the predictions: expect AP to collapse (docs/training.md). Score SSDLite at its "
                        "training size", self.run_dir, self.image_size, ", ".join(str(i + 1) for i in grown),
                        len(sides), image_size, ", ".join(f"{sides[i]}x{sides[i]}" for i in grown))

    def model(self, form: Optional[str] = None):
        """The run's Keras model with its trained weights, in ``form``: ``"float"`` (the zoo's
        model), ``"quantizable"`` (the same weights, unrolled for quantization) or ``"qat"`` (the
        quantization-aware model of a QAT run); default: the run's own form."""
        form = form or self.own_form
        if form == FLOAT_FORM:
            if self.is_qat:
                raise ValueError(f"{self.run_dir} is a QAT run: its weights exist only in the \"qat\" form")
            model = load_run_model(self)
        elif form not in _MODEL_FORMS:
            known = ", ".join([FLOAT_FORM, *sorted(_MODEL_FORMS)])
            raise ValueError(f"model form {form!r} is unknown (known: {known}; the quantized forms need "
                             f"`import mobile_spinenet.quantization.qat_run`)")
        else:
            model = _MODEL_FORMS[form](self)
        problem = unhealthy_weights(model.trainable_weights)
        if problem:
            raise ValueError(f"{self.run_dir}: its weights are broken ({problem}): the run diverged; retrain it with a "
                             f"lower --lr into a new --out")
        return model

    @classmethod
    def open(cls, run_dir: str) -> "Run":
        """Config and label map of ``run_dir``; a clear error when it is not a run (directories
        written by earlier versions open too: fields added since take their defaults)."""
        from mobile_spinenet.registry import get_model_info

        config_path = os.path.join(run_dir, CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise ValueError(f"{run_dir} is not a training run directory (no {CONFIG_FILE})")
        config = read_saved_config(config_path)
        label_map = LabelMap.load(os.path.join(run_dir, LABEL_MAP_FILE))
        return cls(run_dir, config, label_map, config.image_size or get_model_info(config.model).image_size)

    @classmethod
    def create(cls, run_dir: str, config: TrainConfig, label_map: LabelMap, image_size: int, resume: bool = False,
               records: Optional[dict] = None, data_report: str = "") -> "Run":
        """Accept a run into ``run_dir`` (refused over existing checkpoints unless ``resume``),
        then write its config, label map, ``records`` ({file name: JSON}) and data report. Call it
        holding the directory's :class:`RunLock`: nothing is written before the checks pass."""
        from mobile_spinenet.io_utils import write_atomically, write_json_atomically
        from mobile_spinenet.training.config import save_config

        os.makedirs(run_dir, exist_ok=True)
        if not resume:
            refuse_to_restart(run_dir)
        run = cls(run_dir, config, label_map, image_size)
        save_config(config, run.path(CONFIG_FILE))
        for name, content in (records or {}).items():
            write_json_atomically(run.path(name), content)
        label_map.save(run.path(LABEL_MAP_FILE))
        write_atomically(run.path(DATA_ISSUES_FILE), data_report)
        return run

    def finished_record(self) -> Optional[dict]:
        """``run.json`` of a finished run (final weights written), else None."""
        return finished_record(self.run_dir)

    def write_final(self, model, record: dict) -> str:
        """The final weights (atomically) and ``run.json``; returns the weights' path."""
        from mobile_spinenet.io_utils import TEMP_PREFIX, write_json_atomically

        path, temp = self.path(WEIGHTS_FILE), self.path(TEMP_PREFIX + WEIGHTS_FILE)
        model.save_weights(temp)
        os.replace(temp, path)
        write_json_atomically(self.path(RUN_FILE), {**record, "weights": WEIGHTS_FILE, "label_map": LABEL_MAP_FILE})
        return path


# What a finished run is, for someone who did not train it: the final weights and everything
# that describes them. Not its checkpoints, TensorBoard logs or the paths of the data it read.
PACKED_FILES = (CONFIG_FILE, LABEL_MAP_FILE, RUN_FILE, WEIGHTS_FILE, DATA_ISSUES_FILE, "metrics.csv", "curves.png")
PACKED_RECORDS = (QAT_FILE, QAT_MODEL_FILE)  # copied when present


def pack_run(run_dir: str, out: str) -> list:
    """Copy a finished run's :data:`PACKED_FILES` into ``out`` (a new folder, written whole or
    not at all); returns the copied names. Refuses an unfinished run and an existing ``out``."""
    import shutil

    from mobile_spinenet.io_utils import TEMP_PREFIX

    run = Run.open(run_dir)
    if run.finished_record() is None:
        raise ValueError(f"{run_dir} has not finished ({WEIGHTS_FILE} or {RUN_FILE} missing); finish it with "
                         f"train --resume first")
    if os.path.exists(out):
        raise ValueError(f"--out {out} exists already; choose a new folder")
    names = [n for n in PACKED_FILES + PACKED_RECORDS if os.path.isfile(run.path(n))]
    temp = os.path.join(os.path.dirname(os.path.abspath(out)), f"{TEMP_PREFIX}pack-{os.getpid()}-{os.path.basename(out)}")
    shutil.rmtree(temp, ignore_errors=True)
    os.makedirs(temp)
    try:
        for name in names:
            shutil.copy2(run.path(name), os.path.join(temp, name))
        os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return names


def build_kwargs_of(config: TrainConfig, image_size: int, num_classes: int) -> dict:
    """The ``zoo.build_model`` keywords of a run with ``config`` (the model id aside)."""
    kwargs = dict(task=config.task, image_size=image_size, num_classes=num_classes, activation=config.activation)
    for name in ("se_gate", "head_filters"):  # only where set: families without them refuse them
        if getattr(config, name) is not None:
            kwargs[name] = getattr(config, name)
    if config.input_normalization != "kit":
        kwargs["input_normalization"] = config.input_normalization
    if config.architecture is not None:
        from mobile_spinenet.architecture import architecture_from_dict
        kwargs["spec"] = architecture_from_dict(config.architecture, "config field architecture")
    return kwargs


def open_run(run_dir: str) -> Run:
    """:meth:`Run.open` (the name the rest of the kit calls)."""
    return Run.open(run_dir)


def load_run_model(run: Run, model_fn=None, **build_overrides):
    """The run's Keras model with its trained weights: the zoo's float model, or ``model_fn()``
    (e.g. the quantization-aware model of a QAT run)."""
    from mobile_spinenet.backend import tf
    from mobile_spinenet.training.checkpoints import AtomicCheckpoints, step_of
    from mobile_spinenet.zoo import build_model

    config = run.config
    kwargs = {**run.build_kwargs(), **build_overrides}
    model = model_fn() if model_fn is not None else build_model(config.model, **kwargs)
    weights = run.path(WEIGHTS_FILE)
    if os.path.isfile(weights):
        model.load_weights(weights)
        return model
    checkpoint = tf.train.Checkpoint(model=model)
    prefix = AtomicCheckpoints(run.checkpoints_dir, checkpoint).latest()
    if prefix is None:
        raise ValueError(f"{run.run_dir} has neither {WEIGHTS_FILE} nor a checkpoint")
    log.warning("%s is unfinished (no %s): using its checkpoint of step %d", run.run_dir, WEIGHTS_FILE,
                step_of(os.path.basename(os.path.dirname(prefix))))
    checkpoint.read(prefix).expect_partial()
    return model


def unfinished_step(run_dir: str) -> Optional[int]:
    """None for a finished run (its final weights written), else the step of its latest checkpoint
    (0 when it has none)."""
    from mobile_spinenet.training.checkpoints import pointed_name, step_of

    if os.path.isfile(os.path.join(run_dir, WEIGHTS_FILE)):
        return None
    name = pointed_name(os.path.join(run_dir, CHECKPOINTS_DIR))
    try:
        return step_of(name) if name else 0
    except ValueError:
        return 0


def refuse_unfinished(run_dir: str, allow: bool, action: str) -> None:
    """``action`` (e.g. "export") of an unfinished run is refused in one line naming its step, unless
    ``allow`` (then loading its model warns, naming the step: :func:`load_run_model`)."""
    step = unfinished_step(run_dir)
    if allow or step is None or not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):  # finished, or no run
        return
    raise ValueError(f"{run_dir} is unfinished (no {WEIGHTS_FILE}; its latest checkpoint is step {step}): finish it "
                     f"with `train --resume`, or pass --allow-unfinished to {action} that checkpoint")
