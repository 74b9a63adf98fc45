"""Export verification: the exported file and the Keras model it came from, run on the same
validation images through the same preprocessing, box mapping and pycocotools evaluator.

A file is rejected when its AP falls more than ``max_ap_drop`` AP points below the Keras
model's (a full-int8 RetinaNet can collapse to ~0 AP while converting without a word), or when
it finds less than ``min_agreement`` of the Keras model's confident detections."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from mobile_spinenet.box_coder import pairwise_iou
from mobile_spinenet.data.records import DetectionDataset

# AP points (0..100) an export may lose against its Keras model before it is rejected.
DEFAULT_MAX_AP_DROP = {"fp32": 0.1, "fp16": 0.1, "dynamic": 1.0, "int8": 2.0, "int8-qat": 1.0}
CONFIDENT_SCORE = 0.3
# Val images a file is checked on unless told. Detectors: AP on a few dozen images is noise at the
# 1-point limit (the trained demo QAT file drops 0.07 AP on 200 val images and 1.00 on the first 40,
# docs/quantization.md). Classifiers: on 200 images one standard error of the top-1 drop between a
# good int8 file and its model is over a point, close to the 2-point limit (a 90.6% classifier whose int8
# file scores 90.6% on 1,000 val images dropped 2.5 on 200 of them), and scoring is cheap.
DEFAULT_VERIFY_IMAGES = {"detection": 200, "classification": 1000}


@dataclass(frozen=True)
class VerifyOptions:
    """How an export is checked against its Keras model before it is written."""

    enabled: bool = True
    val: Optional[str] = None  # default: the run's val data, else its training data
    images: Optional[int] = None  # val images scored; None: DEFAULT_VERIFY_IMAGES of the run's task
    max_ap_drop: Optional[float] = None  # default: DEFAULT_MAX_AP_DROP of the quantization
    require_agreement: bool = False  # fail a file whose detection agreement could not be checked

    def image_count(self, task: str) -> int:
        """How many val images a ``task`` run's file is checked on."""
        return self.images if self.images is not None else DEFAULT_VERIFY_IMAGES[task]


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
    require_agreement: bool = False  # an unchecked agreement (no confident detections) fails the file

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
        if self.agreement is None and self.require_agreement:
            found.append(f"detection agreement could not be checked (no Keras detection scores {CONFIDENT_SCORE:g} "
                         f"or more) and --require-agreement is set")
        return found

    @property
    def unchecked_agreement(self) -> Optional[str]:
        """Why a pass rests on AP alone, or None when agreement was checked."""
        if self.agreement is not None:
            return None
        return (f"detection agreement could not be checked: the Keras model has no detection scoring "
                f"{CONFIDENT_SCORE:g} or more on these {self.images} images, so only the AP comparison was made, and "
                f"at this accuracy AP barely depends on what the file detects; check it on a trained model, "
                f"more --verify-images, or pass --require-agreement to fail such files")

    def summary(self) -> str:
        agreement = ("n/a (no confident Keras detections)" if self.agreement is None else
                     f"{self.agreement:.1%} of {self.confident_detections}, mean |score diff| {self.score_error:.4f}")
        if self.problems:
            verdict = "FAILED: " + "; ".join(self.problems)
        else:
            verdict = "PASSED" + (f" on AP alone: {self.unchecked_agreement}" if self.unchecked_agreement else "")
        return (f"verification on {self.images} images: AP Keras {self.keras_ap:.2f} / TFLite {self.tflite_ap:.2f} "
                f"(drop {self.ap_drop:+.2f}, allowed {self.max_ap_drop:g}); AP50 {self.keras_ap50:.2f} / "
                f"{self.tflite_ap50:.2f}; detection agreement {agreement}\n{verdict}")

    def to_dict(self) -> dict:
        return {**asdict(self), "ap_drop": self.ap_drop, "passed": not self.problems,
                "agreement_checked": self.agreement is not None}


def _iou(a, b) -> float:
    """IoU of two COCO [x, y, w, h] boxes."""
    corners = lambda r: np.asarray([[r[1], r[0], r[1] + r[3], r[0] + r[2]]], np.float64)  # noqa: E731
    return float(pairwise_iou(corners(a), corners(b))[0, 0])


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
                  max_ap_drop: float, max_images: int = 50, min_agreement: float = 0.5,
                  show_progress: bool = False, require_agreement: bool = False,
                  resize: str = "letterbox") -> Verification:
    """Score both predictors (see :mod:`mobile_spinenet.eval.detector_eval`) on the first
    ``max_images`` of ``dataset`` and compare them."""
    from mobile_spinenet.eval.detector_eval import evaluate_predictor
    from mobile_spinenet.progress import bar_updater

    images = min(len(dataset), max_images) if max_images else len(dataset)
    scores = {}
    for name, predict, batch in (("Keras", keras_predict, 8), ("TFLite", tflite_predict, 1)):
        update, close = bar_updater(f"verifying: {name} model", images, enabled=show_progress)
        try:
            scores[name] = evaluate_predictor(predict, dataset, image_size, batch_size=batch, max_images=max_images,
                                              progress=update, resize=resize)
        finally:
            close()
    (keras_metrics, keras_dets), (tflite_metrics, tflite_dets) = scores["Keras"], scores["TFLite"]
    count, agreement, score_error = detection_agreement(keras_dets, tflite_dets)
    return Verification(images, 100 * keras_metrics["AP"], 100 * tflite_metrics["AP"], 100 * keras_metrics["AP50"],
                        100 * tflite_metrics["AP50"], count, agreement, score_error, max_ap_drop, min_agreement,
                        require_agreement)
