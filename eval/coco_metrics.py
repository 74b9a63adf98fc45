"""COCO box and mask AP with pycocotools: the one evaluator of the kit (training validation,
export verification and ``mobile-spinenet eval`` all call it). Never hand-written AP."""
from __future__ import annotations

import contextlib
import io
import json
from typing import Iterable, Mapping, Union

import numpy as np

SUMMARY_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
DETECTION_FIELDS = ("image_id", "category_id", "bbox", "score")


def load_ground_truth(source: Union[str, Mapping]):
    """A pycocotools ``COCO`` from an instances JSON path or an already loaded dict."""
    from pycocotools.coco import COCO

    if isinstance(source, str):
        try:
            with open(source) as f:
                dataset = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON ({error})") from None
    else:
        dataset = dict(source)  # pycocotools only reads it: no deep copy needed
    for field in ("images", "annotations", "categories"):
        if field not in dataset:
            raise ValueError(f"ground truth has no {field!r} field")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


IOU_TYPES = ("bbox", "segm")


def _check_detections(detections: list, coco, iou_type: str = "bbox") -> None:
    known_images = set(coco.getImgIds())
    fields = DETECTION_FIELDS + (("segmentation",) if iou_type == "segm" else ())
    for i, det in enumerate(detections):
        missing = [f for f in fields if f not in det]
        if missing:
            raise ValueError(f"detection {i} lacks field(s) {missing}")
        if det["image_id"] not in known_images:
            raise ValueError(f"detection {i} names image_id {det['image_id']!r}, which the ground truth lacks")
        if len(det["bbox"]) != 4:
            raise ValueError(f"detection {i}: bbox must be [x, y, width, height], got {det['bbox']!r}")


def evaluate(ground_truth, detections: Iterable[Mapping], image_ids=None, iou_type: str = "bbox") -> dict:
    """COCO metrics of ``detections`` (COCO results format, original image pixels): box AP, or
    mask AP with ``iou_type="segm"`` (each detection then carries an RLE ``segmentation``).

    Returns the twelve summary numbers (``AP``, ``AP50``, ... ``ARl``; -1 where undefined)
    and ``per_class_AP`` keyed by category name. ``image_ids`` limits the evaluation.
    """
    from pycocotools.cocoeval import COCOeval

    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    coco = ground_truth if hasattr(ground_truth, "loadRes") else load_ground_truth(ground_truth)
    detections = [dict(d) for d in detections]
    _check_detections(detections, coco, iou_type)
    categories = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    if not detections:  # loadRes refuses an empty list; nothing detected scores zero
        return {**{name: 0.0 for name in SUMMARY_NAMES}, "per_class_AP": {n: 0.0 for n in categories.values()}}
    if iou_type == "segm":  # loadRes then takes each detection's area and box from its mask, as COCO's own
        detections = [{k: v for k, v in d.items() if k != "bbox"} for d in detections]
    with contextlib.redirect_stdout(io.StringIO()):
        results = coco.loadRes(detections)
        evaluator = COCOeval(coco, results, iou_type)
        if image_ids is not None:
            evaluator.params.imgIds = list(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {name: float(value) for name, value in zip(SUMMARY_NAMES, evaluator.stats)}
    # precision[T, R, K, A, M]: all areas (A=0), 100 detections (M=-1), averaged over T and R.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        valid = precision[:, :, k][precision[:, :, k] > -1]
        per_class[categories[category_id]] = float(valid.mean()) if valid.size else -1.0
    metrics["per_class_AP"] = per_class
    return metrics


def format_metrics(metrics: Mapping) -> str:
    """The summary numbers and per-class AP as aligned text lines."""
    lines = [f"{name:6s} {metrics[name]:.4f}" for name in SUMMARY_NAMES]
    for name, value in sorted(metrics.get("per_class_AP", {}).items()):
        lines.append(f"AP[{name}] {value:.4f}")
    return "\n".join(lines)


def boxes_to_coco(image_id: int, boxes_yxyx: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                  class_to_category: Mapping[int, int]) -> list[dict]:
    """Detections as COCO results: corner boxes (ymin, xmin, ymax, xmax) in original-image
    pixels, contiguous class indices mapped back to category ids."""
    out = []
    for (ymin, xmin, ymax, xmax), score, cls in zip(boxes_yxyx, scores, classes):
        out.append({"image_id": int(image_id), "category_id": int(class_to_category[int(cls)]),
                    "bbox": [float(xmin), float(ymin), float(xmax - xmin), float(ymax - ymin)],
                    "score": float(score)})
    return out
