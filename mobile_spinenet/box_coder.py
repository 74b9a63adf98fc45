"""Box encoding relative to anchors (Faster R-CNN parameterisation).

Targets are (ty, tx, th, tw) * scale_factors, the order and meaning that TFLite's
``TFLite_Detection_PostProcess`` decodes with its y/x/h/w scales. Works on NumPy
arrays and TF tensors alike.
"""
from __future__ import annotations

import numpy as np

DEFAULT_SCALE_FACTORS = (1.0, 1.0, 1.0, 1.0)
_EPS = 1e-8
# Size codes are clamped before exp, as torchvision's box coder does: no box grows past 1000/16
# = 62.5x its anchor, and a wild code cannot overflow float32 into inf/nan boxes.
MAX_LOG_SCALE = float(np.log(1000.0 / 16))


def _lib(x):
    if isinstance(x, np.ndarray):
        return np
    from mobile_spinenet.backend import tf
    return tf.math


def _centre_size(boxes):
    ymin, xmin, ymax, xmax = (boxes[..., i] for i in range(4))
    h, w = ymax - ymin, xmax - xmin
    return ymin + 0.5 * h, xmin + 0.5 * w, h, w


def encode(boxes, anchors, scale_factors=DEFAULT_SCALE_FACTORS):
    """Encode corner boxes ``[..., 4]`` against anchors ``[..., 4]``."""
    lib = _lib(boxes)
    yc, xc, h, w = _centre_size(boxes)
    ya, xa, ha, wa = _centre_size(anchors)
    h, w = lib.maximum(h, _EPS), lib.maximum(w, _EPS)
    # a degenerate reference box (a padded or edge-clipped Mask R-CNN RoI) gives large codes, never inf/NaN
    ha, wa = lib.maximum(ha, _EPS), lib.maximum(wa, _EPS)
    sy, sx, sh, sw = scale_factors
    parts = [(yc - ya) / ha * sy, (xc - xa) / wa * sx, lib.log(h / ha) * sh, lib.log(w / wa) * sw]
    return np.stack(parts, axis=-1) if lib is np else _tf_stack(parts)


def decode(codes, anchors, scale_factors=DEFAULT_SCALE_FACTORS):
    """Invert :func:`encode`: codes ``[..., 4]`` to corner boxes."""
    lib = _lib(codes)
    ya, xa, ha, wa = _centre_size(anchors)
    sy, sx, sh, sw = scale_factors
    ty, tx, th, tw = (codes[..., i] for i in range(4))
    yc, xc = ty / sy * ha + ya, tx / sx * wa + xa
    h = lib.exp(lib.minimum(th / sh, MAX_LOG_SCALE)) * ha
    w = lib.exp(lib.minimum(tw / sw, MAX_LOG_SCALE)) * wa
    parts = [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2]
    return np.stack(parts, axis=-1) if lib is np else _tf_stack(parts)


def pairwise_iou(a, b):
    """IoU ``[N, M]`` of corner boxes ``a [N, 4]`` and ``b [M, 4]`` (NumPy arrays or TF tensors):
    the one IoU of the kit (anchor labelling, demo-data placement, export verification)."""
    lib = _lib(a)
    a, b = a[:, None, :], b[None, :, :]
    inter_h = lib.maximum(lib.minimum(a[..., 2], b[..., 2]) - lib.maximum(a[..., 0], b[..., 0]), 0.0)
    inter_w = lib.maximum(lib.minimum(a[..., 3], b[..., 3]) - lib.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = inter_h * inter_w
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / lib.maximum(area(a) + area(b) - inter, 1e-8)


def _tf_stack(parts):
    from mobile_spinenet.backend import tf
    return tf.stack(parts, axis=-1)
