"""Atomic checkpoints: each is written to a hidden temp folder and renamed into place, and
the ``latest`` pointer is replaced atomically, so a kill at any moment leaves the previous
checkpoint intact."""
from __future__ import annotations

import logging
import os
import shutil
from typing import Optional

from mobile_spinenet.io_utils import TEMP_PREFIX, write_atomically

LATEST = "latest"
log = logging.getLogger("mobile_spinenet.checkpoints")


def pointed_name(directory: str) -> Optional[str]:
    """The checkpoint name (``step-XXXXXXXX``) that ``directory/latest`` points at, or None."""
    path = os.path.join(directory, LATEST)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


def step_of(name: str) -> int:
    """The step of a checkpoint name ``step-00000011`` (11)."""
    return int(name.split("-")[-1])


class CheckpointWriteError(ValueError):
    """A checkpoint could not be written (disk full, no permission, ...); the previous ones stand."""


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]


class AtomicCheckpoints:
    """Save / restore a ``tf.train.Checkpoint`` under ``directory/step-XXXXXXXX/ckpt``."""

    def __init__(self, directory: str, checkpoint, keep: int = 3, collective: bool = False):
        # collective: every worker of a multi-worker run must take part in each save (reading batch
        # norm's synchronised statistics is a collective), so a save is never skipped
        self.directory, self.checkpoint, self.keep = directory, checkpoint, max(1, keep)
        self.collective = collective
        os.makedirs(directory, exist_ok=True)

    def _saved(self) -> list:
        return sorted(n for n in os.listdir(self.directory) if n.startswith("step-"))

    def save(self, step: int) -> str:
        name = f"step-{int(step):08d}"
        final = os.path.join(self.directory, name)
        if os.path.isdir(final) and not self.collective:
            return os.path.join(final, "ckpt")
        temp = os.path.join(self.directory, f"{TEMP_PREFIX}{name}-{os.getpid()}")
        shutil.rmtree(temp, ignore_errors=True)
        try:
            self.checkpoint.write(os.path.join(temp, "ckpt"))
            if os.path.isdir(final):  # written before (a collective save is never skipped): keep that one
                shutil.rmtree(temp, ignore_errors=True)
                return os.path.join(final, "ckpt")
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
        name = pointed_name(self.directory)
        if name is None:
            return None
        prefix = os.path.join(self.directory, name, "ckpt")
        return prefix if os.path.isfile(prefix + ".index") else None

    def restore_latest(self) -> Optional[str]:
        """Restore the newest intact checkpoint and return its prefix (None when there is none). A
        checkpoint that cannot be read (truncated, or ``latest`` naming a missing one) is renamed
        ``broken-step-...`` (kept for inspection, never overwritten by the resumed run) with a
        warning naming it, and the one before it is tried."""
        names = self._saved()
        pointed = pointed_name(self.directory)
        if pointed and pointed not in names:
            log.warning("%s names checkpoint %s, which is missing; using the newest one there is",
                        os.path.join(self.directory, LATEST), pointed)
        candidates = sorted(names, reverse=True)
        for name in candidates:
            prefix = os.path.join(self.directory, name, "ckpt")
            try:
                self.checkpoint.read(prefix).assert_existing_objects_matched()
            except Exception as error:  # noqa: BLE001 (TF raises IndexError, DataLossError, NotFoundError ...)
                aside = os.path.join(self.directory, "broken-" + name)
                os.replace(os.path.join(self.directory, name), aside)
                log.warning("checkpoint %s cannot be read (%s); moved to %s, trying the one before it",
                            os.path.join(self.directory, name), _reason(error), aside)
                continue
            if name != pointed:
                write_atomically(os.path.join(self.directory, LATEST), name + "\n")
            return prefix
        return None

    def read_latest(self) -> Optional[str]:
        """Restore the newest checkpoint that reads, touching nothing in the folder (a worker
        resuming from the chief's checkpoints, which the chief alone tidies); its prefix, or None."""
        for name in sorted(self._saved(), reverse=True):
            prefix = os.path.join(self.directory, name, "ckpt")
            try:
                self.checkpoint.read(prefix).assert_existing_objects_matched()
            except Exception:  # noqa: BLE001 (the chief moves it aside and takes the one before it too)
                continue
            return prefix
        return None

    def remove_leftovers(self) -> list:
        """Remove the temp folders of checkpoints whose writer was killed (``.tmp-step-...``); call it
        holding the run's lock, when no other process can be writing one. Returns their names."""
        left = [n for n in os.listdir(self.directory) if n.startswith(TEMP_PREFIX)]
        for name in left:
            path = os.path.join(self.directory, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        return left
