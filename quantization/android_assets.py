"""``mobile-spinenet android-assets``: put an exported model into the Android demo's assets.

Writes ``NAME.tflite``, ``NAME.labels.txt`` (from the file's TFLite metadata, else the export's
``.labels.txt``) and, for raw-output files (``--nms none``), ``NAME.anchors.txt`` (one anchor per
line, ``ymin xmin ymax xmax`` in input pixels), which the app's pure-Java core decodes against, and
``NAME.nms.txt`` (the export's post-processing settings as ``key value`` lines, e.g. ``clip_size``
for a run imported from Model Garden)."""
from __future__ import annotations

import json
import os
from typing import Optional

from mobile_spinenet.io_utils import write_atomically

DEMO_ASSETS = os.path.join("android_demo", "app", "src", "main", "assets")
POSTPROCESSED_OUTPUTS = {"location", "category", "score", "number of detections"}
RAW_OUTPUTS = {"boxes", "classes"}


def default_assets_dir() -> Optional[str]:
    """The demo's assets folder of this checkout (``None`` when the kit is installed elsewhere)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(root, DEMO_ASSETS)
    return folder if os.path.isdir(os.path.dirname(folder)) else None


def _labels(model_path: str, content: bytes) -> list:
    from mobile_spinenet.quantization.export_run import sidecar_paths
    from mobile_spinenet.quantization.metadata import read_metadata

    try:
        return read_metadata(content)["labels"]
    except (ValueError, KeyError):
        pass
    sidecar = sidecar_paths(model_path)["labels"]
    if os.path.isfile(sidecar):
        with open(sidecar) as f:
            return [line.strip() for line in f if line.strip()]
    raise ValueError(f"{model_path} has no TFLite metadata with labels and no {sidecar} beside it; "
                     f"export it with `mobile-spinenet export`")


def _raw_output_report(model_path: str) -> dict:
    from mobile_spinenet.quantization.export_run import sidecar_paths

    report_path = sidecar_paths(model_path)["report"]
    if not os.path.isfile(report_path):
        raise ValueError(f"{model_path} has raw outputs (--nms none): its anchors come from the model id in "
                         f"{report_path}, which is missing")
    with open(report_path) as f:
        return json.load(f)


def _anchor_lines(report: dict, input_size: int) -> str:
    from mobile_spinenet.zoo import anchor_settings, model_anchors

    anchors = model_anchors(report["model"], input_size, **anchor_settings(report))
    return "".join(" ".join(f"{v:.6g}" for v in row) + "\n" for row in anchors)


def nms_lines(report: dict) -> str:
    """``NAME.nms.txt``: the raw-output file's post-processing settings (the kit's defaults for
    reports written before the export recorded them), read by the Java core's ``NmsConfig.read``."""
    from dataclasses import asdict

    from mobile_spinenet.postprocess import NMSConfig

    settings = asdict(NMSConfig(**report.get("postprocess", {})))  # every field, in NMSConfig's order
    return "".join(f"{key} {0 if value is None else value}\n" for key, value in settings.items())  # 0: no clip


def copy_to_android_assets(model_path: str, assets_dir: Optional[str] = None, name: Optional[str] = None) -> list:
    """Copy ``model_path`` and what the app needs beside it into ``assets_dir``; returns the written paths."""
    from mobile_spinenet.quantization.interpreter import load_interpreter

    if not os.path.isfile(model_path):
        raise ValueError(f"{model_path} does not exist")
    assets_dir = assets_dir or default_assets_dir()
    if not assets_dir:
        raise ValueError("no android_demo/ in this checkout: pass --assets DIR (the app's src/main/assets)")
    name = name or os.path.basename(model_path)
    if not name.endswith(".tflite"):
        raise ValueError(f"--name must end with .tflite, got {name!r}")
    with open(model_path, "rb") as f:
        content = f.read()
    try:
        interpreter = load_interpreter(model_content=content)
    except Exception as error:  # noqa: BLE001 (the runtime raises several types)
        raise ValueError(f"{model_path} is not a loadable TFLite model: {error}") from None
    details = interpreter.get_output_details()
    outputs = {d["name"] for d in details}
    input_size = int(interpreter.get_input_details()[0]["shape"][1])
    if len(details) == 1 and len(details[0]["shape"]) == 2:  # one [1, classes] output
        shape = [int(n) for n in details[0]["shape"]]
        raise ValueError(f"{model_path} is an image classifier (one output of shape {shape}); the Android demo "
                         f"runs detectors: export a detection run")
    if not (POSTPROCESSED_OUTPUTS <= outputs or RAW_OUTPUTS <= outputs):
        raise ValueError(f"{model_path} has outputs {sorted(outputs)}; the app finds outputs by name and needs "
                         f"{sorted(POSTPROCESSED_OUTPUTS)} or {sorted(RAW_OUTPUTS)} (a detector exported by "
                         f"`mobile-spinenet export`)")
    stem = os.path.join(assets_dir, name[:-len(".tflite")])
    written = [stem + ".tflite", stem + ".labels.txt"]
    labels = _labels(model_path, content)
    extra = {}
    if not POSTPROCESSED_OUTPUTS <= outputs:
        report = _raw_output_report(model_path)
        extra = {stem + ".anchors.txt": _anchor_lines(report, input_size), stem + ".nms.txt": nms_lines(report)}
    write_atomically(written[0], content)
    write_atomically(written[1], "".join(label + "\n" for label in labels))
    for path, text in extra.items():
        write_atomically(path, text)
        written.append(path)
    return written
