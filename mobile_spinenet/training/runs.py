"""A run directory: reading it back (config, label map, model from the final weights or the
latest checkpoint of an unfinished run) and locking it while one process writes to it."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Optional

from mobile_spinenet.data.records import LabelMap
from mobile_spinenet.training.config import TrainConfig, read_saved_config


log = logging.getLogger("mobile_spinenet.runs")
LOCK_FILE = "run.lock"
WEIGHTS_FILE = "model.weights.h5"  # the final weights of a finished run
RUN_FILE = "run.json"  # what a finished run records: steps, epochs, last metrics row, config
SOURCES_FILE = "sources.json"  # the data a run was trained on (export calibrates and verifies with it)


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

    def _owner(self) -> str:
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
            raise RunDirectoryBusy(f"{os.path.dirname(self.path)} is in use by {self._owner()} "
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


def has_checkpoints(run_dir: str) -> bool:
    from mobile_spinenet.training.checkpoints import LATEST
    return os.path.isfile(os.path.join(run_dir, "checkpoints", LATEST))


def refuse_to_restart(run_dir: str) -> None:
    """A new (not ``--resume``) run may not start over an existing one's checkpoints."""
    if has_checkpoints(run_dir):
        raise ValueError(f"{run_dir} already holds checkpoints; pass --resume to continue it, or choose another --out")


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
    from mobile_spinenet.registry import get_model_info

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
