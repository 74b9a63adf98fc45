"""The record of one model in ``mobile-spinenet compare``: ``OUT/results/<name>.json``, one key per
finished stage, saved after each, so a rerun resumes at the first missing stage."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

from mobile_spinenet.io_utils import write_json_atomically


class ModelResult:
    """The recorded stages of one model (``OUT/results/<model>.json``), saved after each stage."""

    def __init__(self, path: str, model: str):
        import json

        self.path = path
        self.data = {"model": model, "minutes": {}}
        if os.path.isfile(path):
            with open(path) as f:
                self.data = json.load(f)

    def has(self, stage: str) -> bool:
        return stage in self.data

    def __getitem__(self, stage: str):
        return self.data[stage]

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        yield
        self.data["minutes"][name] = round((time.perf_counter() - started) / 60, 2)
        write_json_atomically(self.path, self.data)

    def record(self, stage: str, value) -> None:
        self.data[stage] = value
        write_json_atomically(self.path, self.data)
