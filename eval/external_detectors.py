"""Detector files other toolkits make, decoded on the host so that ``eval``, ``predict`` and
``compare`` score them like the kit's own.

Ultralytics' LiteRT exports (``yolo export format=litert`` / ``tflite``, YOLOv8 / YOLO11 / YOLO26):
one float image input, NCHW ``[1, 3, S, S]`` (or NHWC), pixels / 255 (int8 inputs quantized from
that), and one output without a post-processing op:

- raw, ``[1, 4 + K, N]``: per candidate the box centre and size (``cx cy w h``, normalised to the
  input side, as Ultralytics' TFLite head writes them) and K class scores after the sigmoid; the
  host runs the kit's per-class NMS (:func:`mobile_spinenet.postprocess.class_nms`);
- end-to-end, ``[1, N, 6]`` (YOLO26, YOLOv10: NMS-free heads): ``x1 y1 x2 y2 score class`` per
  detection, normalised the same way; the host keeps those above the score threshold.

The class names and input size come from the metadata Ultralytics appends to the file (a zip
holding ``metadata.json``). Coordinates above 2 are taken as input pixels (older exports did not
normalise). TF Object Detection API files (``TFLite_Detection_PostProcess``) are read by the op,
as the kit's own (:func:`mobile_spinenet.quantization.interpreter.postprocess_names`)."""
from __future__ import annotations

import ast
import json
import zipfile
from typing import Optional

import numpy as np

from mobile_spinenet.postprocess import NMSConfig, class_nms

ULTRALYTICS_NORMALIZATION = (0.0, 255.0)  # (mean, std): pixels / 255
FORMATS = ("ultralytics-raw", "ultralytics-end2end")


def ultralytics_metadata(path: str) -> Optional[dict]:
    """The ``metadata.json`` Ultralytics appends to its TFLite files (as a zip), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            name = "metadata.json" if "metadata.json" in names else (names[0] if names else None)
            if name is None:
                return None
            text = archive.read(name).decode("utf-8")
    except (zipfile.BadZipFile, OSError, KeyError, UnicodeDecodeError):
        return None
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        try:
            found = ast.literal_eval(text)  # older exports wrote a Python dict
        except (ValueError, SyntaxError):
            return None
    return found if isinstance(found, dict) else None


def metadata_names(metadata: Optional[dict]) -> Optional[list]:
    """Class names from Ultralytics metadata (``{0: "person", ...}`` or a list)."""
    names = (metadata or {}).get("names")
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            return None
    return [str(n) for n in names] if isinstance(names, list) else None


def output_format(output_shapes: list) -> Optional[str]:
    """Which external format a file's outputs are, by shape; None when none fits."""
    if len(output_shapes) != 1 or len(output_shapes[0]) != 3 or output_shapes[0][0] != 1:
        return None
    _, rows, columns = (int(v) for v in output_shapes[0])
    if columns == 6 and rows > 6:
        return "ultralytics-end2end"
    if rows >= 5 and columns > rows:
        return "ultralytics-raw"
    return None


def _pixels(values: np.ndarray, size: int) -> np.ndarray:
    """Coordinates in input pixels: normalised ones (all within [-2, 2]) are scaled by ``size``."""
    return values * size if values.size and np.abs(values).max() <= 2.0 else values


def decode_raw(output: np.ndarray, size: int, nms: NMSConfig = NMSConfig()) -> tuple:
    """``[1, 4 + K, N]`` -> ``(boxes [1, D, 4] ymin xmin ymax xmax input pixels, scores, classes, count)``."""
    rows = np.asarray(output, np.float32)[0]
    cx, cy, w, h = _pixels(rows[:4], size)
    boxes = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)  # [N, 4]
    return class_nms(boxes[None], rows[4:].T[None], nms)


def decode_end2end(output: np.ndarray, size: int, nms: NMSConfig = NMSConfig()) -> tuple:
    """``[1, N, 6]`` (x1 y1 x2 y2 score class) -> the same tuple as :func:`decode_raw`, the
    detections above ``nms.score_threshold``, best first, at most ``nms.max_detections``."""
    rows = np.asarray(output, np.float32)[0]
    corners = _pixels(rows[:, :4], size)
    keep = np.flatnonzero(rows[:, 4] >= nms.score_threshold)
    keep = keep[np.argsort(-rows[keep, 4], kind="stable")][:nms.max_detections]
    boxes = np.zeros([1, nms.max_detections, 4], np.float32)
    scores = np.zeros([1, nms.max_detections], np.float32)
    classes = np.zeros([1, nms.max_detections], np.int32)
    count = len(keep)
    boxes[0, :count] = corners[keep][:, [1, 0, 3, 2]]
    scores[0, :count] = rows[keep, 4]
    classes[0, :count] = rows[keep, 5].astype(np.int32)
    return boxes, scores, classes, np.asarray([count], np.int32)


DECODERS = {"ultralytics-raw": decode_raw, "ultralytics-end2end": decode_end2end}


def external_predictor(interpreter, fmt: str, size: int, nms: NMSConfig = NMSConfig()):
    """A predictor (images -> boxes, scores, classes, count) for a file of format ``fmt``."""
    from mobile_spinenet.quantization.interpreter import run

    detail = interpreter.get_output_details()[0]
    scale, zero_point = detail.get("quantization", (0.0, 0))
    decode = DECODERS[fmt]

    def predict(images):
        per_image = []
        for image in images:  # these files take one image at a time
            output = next(iter(run(interpreter, image[None]).values()))
            if np.issubdtype(output.dtype, np.integer) and scale:
                output = (output.astype(np.float32) - zero_point) * scale
            boxes, scores, classes, count = decode(output, size, nms)
            per_image.append((boxes[0], scores[0], classes[0], int(count[0])))
        return tuple(np.stack([p[i] for p in per_image]) for i in range(4))

    return predict


def describe(fmt: str, nms: NMSConfig) -> str:
    how = (f"per-class NMS on the host (IoU {nms.iou_threshold:g}, score >= {nms.score_threshold:g}, "
           f"{nms.max_detections} per image)" if fmt == "ultralytics-raw"
           else f"its own detections above score {nms.score_threshold:g} (NMS-free head)")
    return f"Ultralytics {'raw' if fmt == 'ultralytics-raw' else 'end-to-end'} outputs, {how}"
