"""Detector outputs -> detections: decode box codes against the anchors, sigmoid scores,
per-class NMS (IoU 0.5, score >= 0.05, 100 per image, as RetinaNet evaluates on COCO)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_spinenet import box_coder
from mobile_spinenet.backend import tf


@dataclass(frozen=True)
class NMSConfig:
    """Post-processing settings shared by Keras evaluation and the TFLite export."""

    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000  # candidates kept per class before NMS


def detect(class_logits, box_codes, anchors: np.ndarray, nms: NMSConfig = NMSConfig()):
    """``(boxes [B, D, 4] model pixels, scores [B, D], classes [B, D], count [B])`` as NumPy."""
    anchors = tf.constant(anchors, tf.float32)
    boxes = box_coder.decode(tf.convert_to_tensor(box_codes, tf.float32), anchors)
    scores = tf.sigmoid(tf.convert_to_tensor(class_logits, tf.float32))
    result = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_output_size_per_class=min(nms.pre_nms_top_k, nms.max_detections),
        max_total_size=nms.max_detections, iou_threshold=nms.iou_threshold,
        score_threshold=nms.score_threshold, clip_boxes=False)
    return (result.nmsed_boxes.numpy(), result.nmsed_scores.numpy(),
            result.nmsed_classes.numpy().astype(np.int32), result.valid_detections.numpy())
