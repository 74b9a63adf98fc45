"""The one rule for every command that writes files the user names: it never replaces a file it did
not write itself in an earlier run of the same kind (an export's own sidecars, predict's own
drawings), and it never writes over its own inputs. Both are refused in one line before any work,
naming the file and the way out (another ``--out``, or ``--force`` where replacing is legitimate)."""
from __future__ import annotations

import json
import os
from typing import Callable, Iterable

KIT_REPORT_KEYS = ("model", "quant", "ops")  # what every export report of the kit holds


def read_json_or_none(path: str):
    """The JSON in ``path``, or None when it is missing, unreadable or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_export_report(path: str) -> bool:
    """Whether ``path`` is a report an export of the kit wrote (``X.json`` beside ``X.tflite``)."""
    report = read_json_or_none(path)
    return isinstance(report, dict) and all(key in report for key in KIT_REPORT_KEYS)


def same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def refuse_to_replace(paths: Iterable[str], is_ours: Callable[[str], bool], made_by: str, force: bool = False,
                      inputs: Iterable[str] = ()) -> None:
    """Raise a one-line ``ValueError`` for the first of ``paths`` that is one of ``inputs`` (always),
    or that exists without ``is_ours(path)`` (unless ``force``). ``made_by`` names the earlier
    command whose files may be replaced (e.g. "an earlier export")."""
    inputs = list(inputs)
    for path in paths:
        if any(same_file(source, path) for source in inputs):
            raise ValueError(f"{path} is one of the inputs; writing there would replace it: choose another --out")
        if not force and os.path.lexists(path) and not is_ours(path):
            raise ValueError(f"{path} exists and was not written by {made_by}; it would be replaced: choose another "
                             f"--out, or pass --force to replace it")


def export_files_owned(paths: dict) -> Callable[[str], bool]:
    """``is_ours`` for an export's files (``sidecar_paths``): a file is the kit's when the report of
    its pair (``X.json`` for ``X.tflite`` and ``X.labels.txt``, ``X.rejected.json`` for the rejected
    pair) is a kit export report."""
    written = is_export_report(paths["report"])
    rejected = is_export_report(paths["rejected_report"])
    owner = {paths["out"]: written, paths["labels"]: written, paths["report"]: written,
             paths["rejected"]: rejected, paths["rejected_report"]: rejected}
    return lambda path: owner.get(path, False)


def drawings_owned(out_dir: str, record_name: str, key: str) -> Callable[[str], bool]:
    """``is_ours`` for a folder that an earlier predict wrote: its record (``record_name``, a JSON list
    of dicts, each naming its input ``image``) and the files the record names under ``key``."""
    record_path = os.path.join(out_dir, record_name)
    record = read_json_or_none(record_path)
    if not (isinstance(record, list) and all(isinstance(r, dict) and "image" in r for r in record)):
        return lambda path: False
    named: set = {os.path.realpath(record_path)}
    for row in record:
        value = row.get(key)
        if isinstance(value, str):  # recorded relative to the folder the earlier predict ran in
            named.add(os.path.realpath(os.path.join(out_dir, os.path.basename(value))))
    return lambda path: os.path.realpath(path) in named
