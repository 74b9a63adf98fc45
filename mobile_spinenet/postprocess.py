"""Detector outputs -> detections: decode box codes against the anchors, sigmoid scores, each
class's ``pre_nms_top_k`` best anchors as its NMS candidates, per-class NMS (IoU 0.5, score >= 0.05,
100 per image, as RetinaNet evaluates on COCO)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mobile_spinenet import box_coder
from mobile_spinenet.backend import tf


@dataclass(frozen=True)
class NMSConfig:
    """Post-processing settings shared by Keras evaluation and the TFLite export."""

    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000  # each class's best-scoring anchors that enter its NMS (as RetinaNet's)
    clip_size: Optional[int] = None  # clip decoded boxes to [0, clip_size] before NMS (Model Garden's generator)


def detect(class_logits, box_codes, anchors: np.ndarray, nms: NMSConfig = NMSConfig()):
    """``(boxes [B, D, 4] model pixels, scores [B, D], classes [B, D], count [B])`` as NumPy.

    Each class's NMS sees only its ``pre_nms_top_k`` highest-scoring anchors (fewer when fewer
    clear the score threshold), and keeps up to ``max_detections`` boxes; the best
    ``max_detections`` over all classes are returned."""
    anchors = tf.constant(anchors, tf.float32)
    boxes = box_coder.decode(tf.convert_to_tensor(box_codes, tf.float32), anchors)  # [B, N, 4]
    if nms.clip_size is not None:
        boxes = tf.clip_by_value(boxes, 0.0, float(nms.clip_size))
    return class_nms(boxes, tf.sigmoid(tf.convert_to_tensor(class_logits, tf.float32)), nms)


def class_nms(boxes, scores, nms: NMSConfig = NMSConfig()):
    """Per-class NMS of decoded ``boxes [B, N, 4]`` (ymin, xmin, ymax, xmax) with class
    ``scores [B, N, K]`` in [0, 1]: ``(boxes [B, D, 4], scores [B, D], classes [B, D], count [B])``
    as NumPy. Each class's NMS sees only its ``pre_nms_top_k`` best-scoring boxes and keeps up to
    ``max_detections``; the best ``max_detections`` over all classes are returned. The one NMS of
    every detector the kit decodes on the host (its own raw outputs, Ultralytics' raw outputs)."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    top_k = min(nms.pre_nms_top_k, int(scores.shape[1]))
    # per class, its top_k anchors: candidate j of class c is (boxes[anchor], score) at [B, j, c]
    top_scores, top_anchors = tf.math.top_k(tf.transpose(scores, [0, 2, 1]), k=top_k)  # [B, K, top_k]
    candidate_boxes = tf.gather(boxes, top_anchors, batch_dims=1)  # [B, K, top_k, 4]
    result = tf.image.combined_non_max_suppression(
        tf.transpose(candidate_boxes, [0, 2, 1, 3]), tf.transpose(top_scores, [0, 2, 1]),
        max_output_size_per_class=nms.max_detections, max_total_size=nms.max_detections,
        iou_threshold=nms.iou_threshold, score_threshold=nms.score_threshold, clip_boxes=False)
    return (result.nmsed_boxes.numpy(), result.nmsed_scores.numpy(),
            result.nmsed_classes.numpy().astype(np.int32), result.valid_detections.numpy())
