"""``mobile-spinenet eval``: COCO AP of a training run (Keras) or an exported ``.tflite`` file on
a COCO/VOC dataset, through the same preprocessing, box mapping and pycocotools evaluator."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Callable, Optional

from mobile_spinenet.data.records import LabelMap
from mobile_spinenet.registry import INSTANCE_SEGMENTATION


@dataclass
class LoadedDetector:
    predict: Callable
    image_size: int
    label_map: Optional[LabelMap]  # None: a bare .tflite file; class k is matched to a dataset category below
    description: str
    names: Optional[list] = None  # class names (the label map's, the file's metadata or --labels)
    resize: str = "letterbox"  # how images are fitted to its input square (data/images.py RESIZE_MODES)
    # a Mask R-CNN run's detections with masks (eval.instance_eval.mask_rcnn_predictor); None: boxes only
    instance_predict: Optional[Callable] = None

    def label_map_for(self, dataset_map: LabelMap) -> LabelMap:
        """Class index -> dataset category: the run's own map, else by name (the file's labels
        against the dataset's category names, ignoring case), else the dataset's order."""
        if self.label_map is not None:
            return self.label_map
        if not self.names:
            return dataset_map
        by_name = {n.strip().lower(): c for c, n in zip(dataset_map.category_ids, dataset_map.names)}
        matched = [by_name.get(name.strip().lower()) for name in self.names]
        if not any(c is not None for c in matched):
            raise ValueError(f"none of the detector's {len(self.names)} labels ({', '.join(self.names[:5])} ...) "
                             f"is a category of the dataset ({', '.join(dataset_map.names[:5])} ...)")
        return LabelMap([c if c is not None else -1 - k for k, c in enumerate(matched)], list(self.names))


@dataclass
class LoadedClassifier:
    predict: Callable  # classifier_eval.ClassifierPredictor: [B, S, S, 3] images -> [B, K] class scores
    image_size: int
    names: list  # class names, in output order
    resize: str = "letterbox"


def read_labels(path: str) -> list:
    """Class names, one per line (blank lines kept as unnamed classes: line k names class k)."""
    try:
        with open(path) as f:
            names = [line.rstrip("\n") for line in f]
    except OSError as error:
        raise ValueError(f"--labels {path}: {error.strerror}") from None
    while names and not names[-1].strip():
        names.pop()
    if not names:
        raise ValueError(f"--labels {path} names no class")
    return names


def _run_and_model(path: str, image_size: Optional[int] = None):
    """``(run, keras_model)`` of the run directory ``path`` in its own form, the float model built
    for ``image_size`` input when given (:meth:`Run.at_input_size`)."""
    from mobile_spinenet.quantization.qat_run import load_any_run
    from mobile_spinenet.training.runs import open_run

    if image_size is None:
        run, model, _ = load_any_run(path)
        return run, model
    run = open_run(path).at_input_size(image_size)
    return run, run.model()


def _refuse_input_size(image_size: Optional[int], path: str, what: str) -> None:
    if image_size is not None:
        raise ValueError(f"--image-size builds a run's float Keras model at another input size; {path} is {what}")


def load_detector(path: str, labels: Optional[str] = None, resize: Optional[str] = None,
                  image_size: Optional[int] = None) -> LoadedDetector:
    """A run directory (float or QAT) or a ``.tflite`` file. A file's labels come from the kit's
    ``.json`` report beside it, else its TFLite metadata, else ``labels`` (a text file); a file
    with ``TFLite_Detection_PostProcess`` in its graph needs nothing else, whoever made it, and
    a raw-output file needs the report naming its model (for the anchors). ``resize`` overrides
    how images are fitted to the input: a run's recipe says it, a file's report or metadata, and a
    file with neither is stretched, as MediaPipe and the TF Object Detection API feed theirs.
    ``image_size`` builds a float detection run for that input size instead of its own."""
    from mobile_spinenet.data.images import check_resize

    if resize is not None:
        check_resize(resize)
    from mobile_spinenet.eval.detector_eval import keras_predictor, tflite_predictor
    from mobile_spinenet.registry import get_model_info

    from mobile_spinenet.quantization.savedmodel_export import is_savedmodel

    if is_savedmodel(path):
        _refuse_input_size(image_size, path, "a SavedModel, whose input size is fixed")
        return _load_savedmodel(path, resize)
    if os.path.isdir(path):
        run, model = _run_and_model(path, image_size)
        if run.config.task == INSTANCE_SEGMENTATION:
            from mobile_spinenet.eval.instance_eval import boxes_only, mask_rcnn_predictor

            instances = mask_rcnn_predictor(model)
            return LoadedDetector(boxes_only(instances), run.image_size, run.label_map,
                                  f"{path} (Keras Mask R-CNN, {run.config.model})", run.label_map.names,
                                  resize or run.config.resize, instance_predict=instances)
        return LoadedDetector(keras_predictor(model, run.anchors(), run.nms_config()),
                              run.image_size, run.label_map, f"{path} (Keras, {run.config.model})",
                              run.label_map.names, resize or run.config.resize)
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist (expected a run directory or a .tflite file)")
    _refuse_input_size(image_size, path, "a .tflite file, whose input size is fixed")
    from mobile_spinenet.quantization.export_run import sidecar_paths
    from mobile_spinenet.quantization.interpreter import input_layout, load_interpreter, postprocess_names

    interpreter = load_interpreter(path)
    size = input_layout(interpreter.get_input_details()[0], path)[1]
    report_path = sidecar_paths(path)["report"]
    report = json.load(open(report_path)) if os.path.isfile(report_path) else {}
    label_map = LabelMap.from_dict(report["label_map"]) if "label_map" in report else None
    metadata = _metadata(path)
    names = read_labels(labels) if labels else (label_map.names if label_map else metadata.get("labels") or None)
    from mobile_spinenet.quantization.metadata import resize_of
    asked_resize = resize
    resize = resize or report.get("input", {}).get("resize") or resize_of(metadata) or (
        "letterbox" if report else "stretch")
    in_graph = bool(postprocess_names(interpreter))
    anchors = None
    if not in_graph and "model" not in report:
        external = _load_external(path, interpreter, size, labels, asked_resize)
        if external is not None:
            return external
        shapes = [[int(v) for v in d["shape"]] for d in interpreter.get_output_details()]
        raise ValueError(f"{path} has raw outputs {shapes} (no TFLite_Detection_PostProcess), no {report_path} naming "
                         f"its model, and is no Ultralytics export ([1, 4+K, N] or [1, N, 6]): cannot decode its boxes")
    if not in_graph:
        from mobile_spinenet.zoo import anchor_settings, model_anchors
        get_model_info(report["model"])
        anchors = model_anchors(report["model"], size, **anchor_settings(report))
    from mobile_spinenet.postprocess import NMSConfig
    nms = NMSConfig(**report["postprocess"]) if not in_graph and "postprocess" in report else NMSConfig()
    return LoadedDetector(tflite_predictor(interpreter, anchors, size, nms), size, label_map, f"{path} (TFLite)", names,
                          resize)


def _load_external(path: str, interpreter, size: int, labels: Optional[str], resize: Optional[str]):
    """A detector file another toolkit made (eval/external_detectors.py), or None."""
    from mobile_spinenet.eval.external_detectors import (ULTRALYTICS_NORMALIZATION, describe, external_predictor,
                                                         metadata_names, output_format, ultralytics_metadata)
    from mobile_spinenet.postprocess import NMSConfig
    from mobile_spinenet.quantization.interpreter import file_normalization, input_feed

    fmt = output_format([[int(v) for v in d["shape"]] for d in interpreter.get_output_details()])
    if fmt is None:
        return None
    metadata = ultralytics_metadata(path)
    names = read_labels(labels) if labels else metadata_names(metadata)
    # the input's values: the file's TFLite metadata when it has some, else Ultralytics' convention
    normalization = file_normalization(path) or ULTRALYTICS_NORMALIZATION
    interpreter.kit_feed = input_feed(interpreter.get_input_details()[0], normalization, path)
    nms = NMSConfig()
    log = logging.getLogger("mobile_spinenet.eval")
    log.info("%s: %s; input pixels / %g%s", path, describe(fmt, nms), normalization[1],
             "" if metadata else " (no Ultralytics metadata: class k is the dataset's k-th category unless --labels)")
    return LoadedDetector(external_predictor(interpreter, fmt, size, nms), size, None,
                          f"{path} (TFLite, {describe(fmt, nms).split(',')[0]})", names, resize or "letterbox")


def _load_savedmodel(path: str, resize: Optional[str]) -> LoadedDetector:
    """A SavedModel the kit exported (``export-savedmodel``): Mask R-CNN outputs, or a detector's
    raw outputs decoded with the anchors its report names."""
    from mobile_spinenet.quantization.savedmodel_export import read_report, served_predictor

    report = read_report(path)
    if report["task"] not in ("detection", INSTANCE_SEGMENTATION):
        raise ValueError(f"{path} is a {report['task']} SavedModel; eval scores detectors and Mask R-CNN")
    label_map = LabelMap.from_dict(report["label_map"])
    size, resize = report["image_size"], resize or report["input"]["resize"]
    description = f"{path} (SavedModel, {report['model']})"
    predict = served_predictor(path, report)
    if report["task"] == INSTANCE_SEGMENTATION:
        from mobile_spinenet.eval.instance_eval import boxes_only

        return LoadedDetector(boxes_only(predict), size, label_map, description, label_map.names, resize,
                              instance_predict=predict)
    return LoadedDetector(predict, size, label_map, description, label_map.names, resize)


def _metadata(path: str) -> dict:
    """The file's TFLite metadata, or ``{}`` (none, or of a shape the kit's reader does not know)."""
    from mobile_spinenet.quantization.metadata import read_metadata

    try:
        return read_metadata(open(path, "rb").read())
    except Exception:
        return {}


def evaluate_path(path: str, data: str, max_images: Optional[int] = None, progress=None,
                  labels: Optional[str] = None, resize: Optional[str] = None,
                  image_size: Optional[int] = None) -> tuple[dict, list]:
    """``(metrics, detections)`` of the detector at ``path`` on the dataset ``data`` (a float run
    built for ``image_size`` input when given)."""
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.detector_eval import evaluate_predictor

    detector = load_detector(path, labels, resize, image_size)
    if detector.label_map is not None:
        dataset = read_dataset(data, label_map=detector.label_map)
    else:
        dataset = read_dataset(data)
        label_map = detector.label_map_for(dataset.label_map)
        if label_map is not dataset.label_map:
            dataset = dataset.relabelled(label_map)
    return evaluate_predictor(detector.predict, dataset, detector.image_size, max_images=max_images, progress=progress,
                              resize=detector.resize)


def task_of(path: str) -> str:
    """The task of a run directory, or of a file the kit exported from one (``detection`` for a
    file without the kit's report)."""
    from mobile_spinenet.quantization.savedmodel_export import is_savedmodel, read_report

    if is_savedmodel(path):
        return read_report(path)["task"]
    if os.path.isdir(path):
        from mobile_spinenet.training.runs import open_run

        return open_run(path).config.task
    from mobile_spinenet.quantization.export_run import sidecar_paths

    report = sidecar_paths(path)["report"]
    return json.load(open(report)).get("task", "detection") if os.path.isfile(report) else "detection"


def evaluate_instances_path(path: str, data: str, max_images: Optional[int] = None, progress=None,
                            resize: Optional[str] = None, image_size: Optional[int] = None) -> tuple[dict, list]:
    """``({"bbox": metrics, "segm": metrics}, results)`` of the Mask R-CNN run at ``path`` on the
    COCO dataset ``data``, read with its masks (``image_size``: refused, :meth:`Run.at_input_size`)."""
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.instance_eval import evaluate_instances

    detector = load_detector(path, resize=resize, image_size=image_size)
    if detector.instance_predict is None:
        raise ValueError(f"{path} is not a Mask R-CNN run (task {task_of(path)}); mask AP needs one")
    dataset = read_dataset(data, label_map=detector.label_map, masks=True)
    return evaluate_instances(detector.instance_predict, dataset, detector.image_size, max_images=max_images,
                              progress=progress, resize=detector.resize)


def load_classifier(path: str, resize: Optional[str] = None, image_size: Optional[int] = None) -> LoadedClassifier:
    """A classification run (Keras; built for ``image_size`` input when given) or a classifier
    file the kit exported (its report gives labels, size and resize) as a predictor."""
    from mobile_spinenet.eval.classifier_eval import keras_classifier, tflite_classifier

    if os.path.isdir(path):
        run, model = _run_and_model(path, image_size)
        return LoadedClassifier(keras_classifier(model), run.image_size, list(run.label_map.names),
                                resize or run.config.resize)
    _refuse_input_size(image_size, path, "a .tflite file, whose input size is fixed")
    from mobile_spinenet.quantization.export_run import sidecar_paths
    from mobile_spinenet.quantization.interpreter import load_interpreter

    report = json.load(open(sidecar_paths(path)["report"]))
    return LoadedClassifier(tflite_classifier(load_interpreter(path)), report["image_size"], list(report["labels"]),
                            resize or report["input"]["resize"])


def evaluate_classifier_path(path: str, data: str, max_images: Optional[int] = None,
                             resize: Optional[str] = None, image_size: Optional[int] = None) -> dict:
    """Top-1/top-5 accuracy of :func:`load_classifier`'s classifier on the class folders ``data``."""
    from mobile_spinenet.data.class_folders import read_class_folders
    from mobile_spinenet.eval.classifier_eval import evaluate_classifier

    classifier = load_classifier(path, resize, image_size)
    dataset = read_class_folders(data, class_names=tuple(classifier.names))
    return evaluate_classifier(classifier.predict, dataset, classifier.image_size, max_images=max_images,
                               resize=classifier.resize)
