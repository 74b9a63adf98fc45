"""Export verification: the exported file and the Keras model it came from, run on the same
validation images through the same preprocessing, box mapping and pycocotools evaluator.

A file is rejected when its AP falls more than ``max_ap_drop`` AP points below the Keras
model's (a full-int8 RetinaNet can collapse to ~0 AP while converting without a word), or when
it finds less than ``min_agreement`` of the Keras model's confident detections."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from mobile_spinenet.data.records import DetectionDataset

# AP points (0..100) an export may lose against its Keras model before it is rejected.
DEFAULT_MAX_AP_DROP = {"fp32": 0.1, "fp16": 0.1, "dynamic": 1.0, "int8": 2.0, "int8-qat": 1.0}
CONFIDENT_SCORE = 0.3


class ExportVerificationError(ValueError):
    """The exported file does not do what its Keras model does."""


@dataclass
class Verification:
    images: int
    keras_ap: float  # AP points, 0..100
    tflite_ap: float
    keras_ap50: float
    tflite_ap50: float
    confident_detections: int  # Keras detections with score >= CONFIDENT_SCORE
    agreement: Optional[float]  # share of those the file also finds (same class, IoU >= 0.5)
    score_error: Optional[float]  # mean |score difference| over the matched ones
    max_ap_drop: float
    min_agreement: float

    @property
    def ap_drop(self) -> float:
        return self.keras_ap - self.tflite_ap

    @property
    def problems(self) -> list:
        found = []
        if self.ap_drop > self.max_ap_drop:
            found.append(f"AP drops by {self.ap_drop:.2f} points (Keras {self.keras_ap:.2f}, TFLite "
                         f"{self.tflite_ap:.2f}), more than the allowed {self.max_ap_drop:g}")
        if self.agreement is not None and self.agreement < self.min_agreement:
            found.append(f"the file finds only {self.agreement:.0%} of the Keras model's "
                         f"{self.confident_detections} confident detections (at least {self.min_agreement:.0%} wanted)")
        return found

    def summary(self) -> str:
        agreement = ("n/a (no confident Keras detections)" if self.agreement is None else
                     f"{self.agreement:.1%} of {self.confident_detections}, mean |score diff| {self.score_error:.4f}")
        verdict = "PASSED" if not self.problems else "FAILED: " + "; ".join(self.problems)
        return (f"verification on {self.images} images: AP Keras {self.keras_ap:.2f} / TFLite {self.tflite_ap:.2f} "
                f"(drop {self.ap_drop:+.2f}, allowed {self.max_ap_drop:g}); AP50 {self.keras_ap50:.2f} / "
                f"{self.tflite_ap50:.2f}; detection agreement {agreement}\n{verdict}")

    def to_dict(self) -> dict:
        return {**asdict(self), "ap_drop": self.ap_drop, "passed": not self.problems}


def _iou(a, b) -> float:
    """IoU of two COCO [x, y, w, h] boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def detection_agreement(reference: list, candidate: list, min_score: float = CONFIDENT_SCORE):
    """``(count, agreement, score_error)``: of the reference detections with score >= ``min_score``
    (and a box of non-zero area),
    the share that ``candidate`` also has (same image and category, IoU >= 0.5, each candidate
    used once), and the mean absolute score difference of those matches."""
    by_key = {}
    for det in candidate:
        by_key.setdefault((det["image_id"], det["category_id"]), []).append(det)
    # a box clipped to zero width or height has IoU 0 even with its exact twin: it is no evidence either way
    confident = sorted((d for d in reference if d["score"] >= min_score and d["bbox"][2] > 0 and d["bbox"][3] > 0),
                       key=lambda d: -d["score"])
    used, errors = set(), []
    for det in confident:
        best, best_iou = None, 0.5
        for other in by_key.get((det["image_id"], det["category_id"]), []):
            iou = _iou(det["bbox"], other["bbox"])
            if id(other) not in used and iou >= best_iou:
                best, best_iou = other, iou
        if best is not None:
            used.add(id(best))
            errors.append(abs(best["score"] - det["score"]))
    if not confident:
        return 0, None, None
    return len(confident), len(errors) / len(confident), float(np.mean(errors)) if errors else 1.0


def verify_export(keras_predict, tflite_predict, dataset: DetectionDataset, image_size: int,
                  max_ap_drop: float, max_images: int = 50, min_agreement: float = 0.5) -> Verification:
    """Score both predictors (see :mod:`mobile_spinenet.eval.detector_eval`) on the first
    ``max_images`` of ``dataset`` and compare them."""
    from mobile_spinenet.eval.detector_eval import evaluate_predictor

    keras_metrics, keras_dets = evaluate_predictor(keras_predict, dataset, image_size, max_images=max_images)
    tflite_metrics, tflite_dets = evaluate_predictor(tflite_predict, dataset, image_size, batch_size=1,
                                                     max_images=max_images)
    count, agreement, score_error = detection_agreement(keras_dets, tflite_dets)
    images = min(len(dataset), max_images) if max_images else len(dataset)
    return Verification(images, 100 * keras_metrics["AP"], 100 * tflite_metrics["AP"], 100 * keras_metrics["AP50"],
                        100 * tflite_metrics["AP50"], count, agreement, score_error, max_ap_drop, min_agreement)
