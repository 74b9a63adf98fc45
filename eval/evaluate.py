"""``mobile-spinenet eval``: COCO AP of a training run (Keras) or an exported ``.tflite`` file on
a COCO/VOC dataset, through the same preprocessing, box mapping and pycocotools evaluator."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Optional

from mobile_spinenet.data.records import LabelMap


@dataclass
class LoadedDetector:
    predict: Callable
    image_size: int
    label_map: Optional[LabelMap]  # None: a bare .tflite file; the dataset's own map is assumed
    description: str


def load_detector(path: str) -> LoadedDetector:
    """A run directory (float or QAT) or a ``.tflite`` file (its ``.json`` report beside it, when
    there, gives the label map and, for raw-output files, the anchors)."""
    from mobile_spinenet.eval.detector_eval import keras_predictor, tflite_predictor
    from mobile_spinenet.zoo import model_anchors

    if os.path.isdir(path):
        from mobile_spinenet.quantization.qat_run import is_qat_run, load_qat_model
        from mobile_spinenet.training.runs import load_run_model, open_run

        run, model = load_qat_model(path) if is_qat_run(path) else (open_run(path), None)
        model = model or load_run_model(run)
        return LoadedDetector(keras_predictor(model, model_anchors(run.config.model, run.image_size)),
                              run.image_size, run.label_map, f"{path} (Keras, {run.config.model})")
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist (expected a run directory or a .tflite file)")
    from mobile_spinenet.quantization.export_run import sidecar_paths
    from mobile_spinenet.quantization.interpreter import load_interpreter

    interpreter = load_interpreter(path)
    size = int(interpreter.get_input_details()[0]["shape"][1])
    report_path = sidecar_paths(path)["report"]
    report = json.load(open(report_path)) if os.path.isfile(report_path) else {}
    label_map = LabelMap.from_dict(report["label_map"]) if "label_map" in report else None
    anchors = model_anchors(report["model"], size) if "model" in report else None
    if anchors is None and "location" not in {d["name"] for d in interpreter.get_output_details()}:
        raise ValueError(f"{path} has raw outputs and no {report_path} naming its model: cannot decode its boxes")
    return LoadedDetector(tflite_predictor(interpreter, anchors, size), size, label_map, f"{path} (TFLite)")


def evaluate_path(path: str, data: str, max_images: Optional[int] = None, progress=None) -> tuple[dict, list]:
    """``(metrics, detections)`` of the detector at ``path`` on the dataset ``data``."""
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.detector_eval import evaluate_predictor

    detector = load_detector(path)
    dataset = read_dataset(data, label_map=detector.label_map)
    return evaluate_predictor(detector.predict, dataset, detector.image_size, max_images=max_images, progress=progress)
