"""Atomic file writes: a temp file in the same folder, then a rename, so a crash never
leaves a half-written checkpoint, export or report behind; and a lock for files that several
processes rewrite."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile


TEMP_PREFIX = ".tmp-"  # names of the temp files and folders that atomic writes leave behind only when killed


def write_atomically(path: str, data) -> None:
    """Write ``data`` (bytes or str) to ``path`` through a temp file and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomically(path: str, obj, indent: int = 1) -> None:
    """``json.dumps`` then :func:`write_atomically`."""
    write_atomically(path, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def exclusively(lock_path: str):
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing), waiting for any other
    holder; the kernel drops it if the holder dies."""
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
