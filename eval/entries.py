"""What ``compare --models`` and ``bench seeds --models`` name: a model id (``mnv3_large_ssdlite``),
a model id at an input size (``mnv3_large_ssdlite@384``, one more point of that family's
AP-latency curve), or a finished run folder in ``--runs-from`` (for example a searched
architecture's run), whose config says which model and size it is.

The entry's name keys everything a comparison records (``results/<name>.json``, ``runs/<name>/``,
``<name>-qat/`` beside a reused run), so two sizes of one model id are two entries."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

SIZE_SEPARATOR = "@"


@dataclass(frozen=True)
class Entry:
    name: str
    model_id: str
    image_size: Optional[int]  # None: the comparison's training size (a reused run keeps its own)
    run_dir: Optional[str] = None  # the finished run in --runs-from it names, if any

    @property
    def names_its_size(self) -> bool:
        """Whether the name says the input size (``ID@SIZE``)."""
        return SIZE_SEPARATOR in self.name


def _split(name: str) -> tuple:
    if SIZE_SEPARATOR not in name:
        return name, None
    model_id, size = name.rsplit(SIZE_SEPARATOR, 1)
    if not size.isdigit() or int(size) <= 0:
        raise ValueError(f"--models {name}: the size after '{SIZE_SEPARATOR}' must be a positive number of "
                         f"pixels, e.g. {model_id}{SIZE_SEPARATOR}320")
    return model_id, int(size)


def parse_entry(name: str, runs_from: Optional[str] = None) -> Entry:
    """The :class:`Entry` ``name`` stands for; a one-line error naming it otherwise. A finished run
    ``runs_from/name`` counts first: its config says its model id and input size."""
    from mobile_spinenet.registry import MODELS, check_image_size
    from mobile_spinenet.training.runs import RUN_FILE, open_run

    if not name:
        raise ValueError("--models has an empty name (two commas in a row?)")
    run_dir = os.path.join(runs_from, name) if runs_from else None
    model_id, size = _split(name)
    if run_dir and os.path.isfile(os.path.join(run_dir, RUN_FILE)):
        run = open_run(run_dir)
        if size is not None and size != run.image_size:
            raise ValueError(f"--models {name}: {run_dir} was trained at {run.image_size} px, not {size}")
        return Entry(name, run.config.model, run.image_size, run_dir)
    if model_id not in MODELS:
        where = f" and no finished run {name}/ in --runs-from {runs_from}" if runs_from else ""
        raise ValueError(f"--models {name}: unknown model id {model_id!r}{where}; known ids: {', '.join(MODELS)}")
    if size is not None:
        try:
            check_image_size(model_id, size)
        except ValueError as error:
            raise ValueError(f"--models {name}: {error}") from None
    return Entry(name, model_id, size)


def parse_entries(names, runs_from: Optional[str] = None) -> tuple:
    """:func:`parse_entry` of each name, refusing a name given twice."""
    names = tuple(names)
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {','.join(names)}")
    return tuple(parse_entry(name, runs_from) for name in names)


def model_id_of(name: str) -> str:
    """The model id in an entry's name (``mnv3_large_ssdlite@384`` -> ``mnv3_large_ssdlite``); a
    run folder's name is returned as it is (its config, not its name, knows its model id)."""
    return name.rsplit(SIZE_SEPARATOR, 1)[0] if SIZE_SEPARATOR in name else name
