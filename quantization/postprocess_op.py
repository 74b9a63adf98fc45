"""Detection post-processing inside the TFLite graph: ``TFLite_Detection_PostProcess``.

As the TF Object Detection API does, an empty ``tf.function`` carries
``experimental_implements``; the TFLite converter replaces it with the built-in custom op
(decode against baked-in anchors, then NMS), which every LiteRT runtime ships. Outputs, in
the op's order: boxes ``[1, D, 4]`` (ymin, xmin, ymax, xmax, normalised to the model's square
input), classes ``[1, D]`` (contiguous class index, as float), scores ``[1, D]``, and the number
of detections ``[1]``.
"""
from __future__ import annotations

import numpy as np

from mobile_spinenet.backend import tf
from mobile_spinenet.box_coder import DEFAULT_SCALE_FACTORS
from mobile_spinenet.postprocess import NMSConfig

OUTPUT_NAMES = ("location", "category", "score", "number of detections")


def normalized_center_anchors(anchors: np.ndarray, image_size: int) -> np.ndarray:
    """Corner anchors in pixels -> (ycenter, xcenter, h, w) / image_size, the op's anchor format."""
    ymin, xmin, ymax, xmax = (anchors[:, i] for i in range(4))
    centre = np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], axis=1)
    return (centre / float(image_size)).astype(np.float32)


def _implements_signature(num_classes: int, nms: NMSConfig, regular_nms: bool) -> str:
    y_scale, x_scale, h_scale, w_scale = DEFAULT_SCALE_FACTORS
    attrs = [("max_detections", "i", nms.max_detections), ("max_classes_per_detection", "i", 1),
             ("detections_per_class", "i", nms.max_detections), ("num_classes", "i", num_classes),
             ("use_regular_nms", "b", "true" if regular_nms else "false"),
             ("nms_score_threshold", "f", nms.score_threshold), ("nms_iou_threshold", "f", nms.iou_threshold),
             ("y_scale", "f", y_scale), ("x_scale", "f", x_scale), ("h_scale", "f", h_scale),
             ("w_scale", "f", w_scale)]
    return " ".join(['name: "TFLite_Detection_PostProcess"'] +
                    [f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}' for key, kind, value in attrs])


def detection_postprocess_fn(num_classes: int, nms: NMSConfig = NMSConfig(), regular_nms: bool = True):
    """``fn(box_codes [1, N, 4], scores [1, N, K], anchors [N, 4]) -> (boxes, classes, scores, count)``.

    In TensorFlow it returns placeholders (zeros); only the converted model computes.
    ``regular_nms`` is per-class NMS (what COCO evaluation does); otherwise the op's faster
    class-agnostic variant. Box codes use the kit's (ty, tx, th, tw) order and scales."""

    @tf.function(experimental_implements=_implements_signature(num_classes, nms, regular_nms))
    def postprocess(box_codes, scores, anchors):  # noqa: ARG001 (the converter reads the signature)
        detections = nms.max_detections
        return (tf.zeros([1, detections, 4], tf.float32), tf.zeros([1, detections], tf.float32),
                tf.zeros([1, detections], tf.float32), tf.zeros([1], tf.float32))

    return postprocess
