"""Atomic checkpoints: each is written to a hidden temp folder and renamed into place, and
the ``latest`` pointer is replaced atomically, so a kill at any moment leaves the previous
checkpoint intact."""
from __future__ import annotations

import os
import shutil
from typing import Optional

from mobile_spinenet.io_utils import TEMP_PREFIX, write_atomically

LATEST = "latest"


class CheckpointWriteError(ValueError):
    """A checkpoint could not be written (disk full, no permission, ...); the previous ones stand."""


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]


class AtomicCheckpoints:
    """Save / restore a ``tf.train.Checkpoint`` under ``directory/step-XXXXXXXX/ckpt``."""

    def __init__(self, directory: str, checkpoint, keep: int = 3):
        self.directory, self.checkpoint, self.keep = directory, checkpoint, max(1, keep)
        os.makedirs(directory, exist_ok=True)

    def _saved(self) -> list:
        return sorted(n for n in os.listdir(self.directory) if n.startswith("step-"))

    def save(self, step: int) -> str:
        name = f"step-{int(step):08d}"
        final = os.path.join(self.directory, name)
        if os.path.isdir(final):
            return os.path.join(final, "ckpt")
        temp = os.path.join(self.directory, f"{TEMP_PREFIX}{name}-{os.getpid()}")
        shutil.rmtree(temp, ignore_errors=True)
        try:
            self.checkpoint.write(os.path.join(temp, "ckpt"))
            os.replace(temp, final)
            write_atomically(os.path.join(self.directory, LATEST), name + "\n")
        except Exception as error:  # TF raises its own error types for a full disk
            shutil.rmtree(temp, ignore_errors=True)
            latest = self.latest()
            raise CheckpointWriteError(
                f"cannot write checkpoint {name} into {self.directory}: {_reason(error)}. "
                f"The last complete checkpoint is {os.path.dirname(latest) if latest else 'none'}; "
                f"free space and rerun with --resume") from None
        for old in self._saved()[:-self.keep]:
            shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)
        return os.path.join(final, "ckpt")

    def latest(self) -> Optional[str]:
        path = os.path.join(self.directory, LATEST)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            name = f.read().strip()
        prefix = os.path.join(self.directory, name, "ckpt")
        return prefix if os.path.isfile(prefix + ".index") else None

    def restore_latest(self) -> Optional[str]:
        prefix = self.latest()
        if prefix:
            self.checkpoint.read(prefix).assert_existing_objects_matched()
        return prefix
