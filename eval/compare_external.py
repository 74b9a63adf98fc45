"""Detector files made elsewhere in ``mobile-spinenet compare`` (``--external NAME=FILE``): an
Ultralytics LiteRT export, a TF Object Detection API file, or any file ``eval`` reads, scored on
the comparison's val set (labels matched by name), timed interleaved with the kit's int8 files,
and put on the report's tables and AP-latency curves as a family of its own (one per toolkit: two
Ultralytics files make one curve).

Nothing is trained, fine-tuned or exported for them: the file is compared as it is. Its record
(``OUT/results/<NAME>.json``) names the file's SHA-256, so a rerun resumes it, and a different
file under the same name is refused rather than mixed with the old one's figures."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Callable

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*")


@dataclass(frozen=True)
class ExternalEntry:
    name: str
    path: str


def parse_external(texts, model_names=()) -> tuple:
    """The :class:`ExternalEntry` of each ``NAME=FILE``; a one-line error naming a malformed one, a
    missing file, or a name given twice or also in ``--models``."""
    entries, seen = [], set(model_names)
    for text in texts:
        name, separator, path = text.partition("=")
        name, path = name.strip(), path.strip()
        if not separator or not name or not path:
            raise ValueError(f"--external {text!r}: expected NAME=FILE, e.g. yolo11n=yolo11n_int8.tflite")
        if not NAME.fullmatch(name):
            raise ValueError(f"--external {text}: the name {name!r} may hold letters, digits and _ . @ + - only")
        if name in seen:
            raise ValueError(f"--external {text}: the name {name} is already taken (by --models or another --external)")
        if not os.path.isfile(path):
            raise ValueError(f"--external {text}: {path} does not exist")
        seen.add(name)
        entries.append(ExternalEntry(name, os.path.abspath(path)))
    return tuple(entries)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def family_of_file(description: str) -> str:
    """The curve an external file joins: its toolkit's, as the loaded detector describes it."""
    if "Ultralytics" in description:
        return "Ultralytics YOLO (external)"
    return "external files"


def compare_external(entry: ExternalEntry, out: str, val_dir: str, verify_images: int,
                     progress: Callable[[str], None] = print):
    """Score (or resume) one external file; returns its
    :class:`~mobile_spinenet.eval.model_result.ModelResult`, ready for the interleaved benchmark."""
    from mobile_spinenet.eval.model_result import ModelResult
    from mobile_spinenet.eval.evaluate import evaluate_path, load_detector
    from mobile_spinenet.quantization.export import op_report

    result = ModelResult(os.path.join(out, "results", f"{entry.name}.json"), entry.name)
    sha = file_sha256(entry.path)
    if result.has("external") and result["external"]["sha256"] != sha:
        raise ValueError(f"--external {entry.name}={entry.path}: {result.path} holds the results of another file "
                         f"(SHA-256 {result['external']['sha256'][:16]}); pass another name or another --out")
    if not result.has("external"):
        detector = load_detector(entry.path)
        with open(entry.path, "rb") as f:
            ops = op_report(f.read())
        float_ops = ops.get("float_ops") or {}
        result.record("external", {"file": entry.path, "sha256": sha, "description": detector.description,
                                   "family": family_of_file(detector.description),
                                   "quant": "int8" if not float_ops else "float or mixed", "float_ops": float_ops})
        result.record("counts", {"params": None, "multiply_adds": None, "image_size": detector.image_size,
                                 "num_classes": None})
    if not result.has("int8"):
        progress(f"== {entry.name}: AP of {entry.path} on {verify_images} val images")
        with result.stage("eval"):
            metrics, _ = evaluate_path(entry.path, val_dir, max_images=verify_images)
        result.record("int8", {"file": entry.path, "quant": result["external"]["quant"],
                               "mb": os.path.getsize(entry.path) / 1e6, "passed": None, "keras_AP": None,
                               "tflite_AP": 100 * metrics["AP"], "tflite_AP50": 100 * metrics["AP50"],
                               "keras_AP50": None, "agreement": None, "images": verify_images,
                               "float_ops": result["external"]["float_ops"], "rejected_because": None})
    return result
