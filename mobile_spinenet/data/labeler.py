"""Anchor labelling (RetinaNet, Sec. 5.1): an anchor whose best IoU with a ground-truth box is
>= 0.5 is positive, < 0.4 is background, in between is ignored. As in Detectron and the TF
Object Detection API, each ground-truth box also claims its best-overlapping anchor, so small
boxes that reach no anchor at 0.5 are still trained on. Runs inside ``tf.data``."""
from __future__ import annotations

from mobile_spinenet import box_coder
from mobile_spinenet.box_coder import pairwise_iou
from mobile_spinenet.backend import tf

BACKGROUND = -1
IGNORE = -2


def label_anchors(anchors, boxes, classes, positive_iou: float = 0.5, negative_iou: float = 0.4,
                  match_best_anchor: bool = True):
    """Targets for one image: ``classes [N]`` (class index, ``BACKGROUND`` or ``IGNORE``) and
    encoded ``boxes [N, 4]`` (zeros where not positive)."""
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    # A dummy zero box keeps the shapes valid for images without boxes; it overlaps nothing.
    boxes = tf.concat([tf.reshape(tf.cast(boxes, tf.float32), [-1, 4]), tf.zeros([1, 4])], axis=0)
    classes = tf.concat([tf.reshape(tf.cast(classes, tf.int32), [-1]), [BACKGROUND]], axis=0)
    iou = pairwise_iou(anchors, boxes)  # [N, M+1]
    best_box = tf.argmax(iou, axis=1, output_type=tf.int32)
    best_iou = tf.reduce_max(iou, axis=1)
    if match_best_anchor:
        best_anchor = tf.argmax(iou, axis=0, output_type=tf.int32)  # [M+1]
        has_overlap = tf.reduce_max(iou, axis=0) > 0.0
        forced_anchor = tf.boolean_mask(best_anchor, has_overlap)
        forced_box = tf.boolean_mask(tf.range(tf.shape(boxes)[0]), has_overlap)
        best_box = tf.tensor_scatter_nd_update(best_box, forced_anchor[:, None], forced_box)
        best_iou = tf.tensor_scatter_nd_update(best_iou, forced_anchor[:, None],
                                               tf.fill(tf.shape(forced_anchor), 1.0))
    matched_class = tf.gather(classes, best_box)
    target_classes = tf.where(best_iou >= positive_iou, matched_class,
                              tf.where(best_iou < negative_iou, BACKGROUND, IGNORE))
    positive = target_classes >= 0
    codes = box_coder.encode(tf.gather(boxes, best_box), anchors)
    target_boxes = tf.where(positive[:, None], codes, tf.zeros_like(codes))
    return target_classes, target_boxes
