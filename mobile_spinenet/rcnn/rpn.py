"""The region proposal network: a head over every pyramid level, and its boxes turned into proposals."""
from __future__ import annotations

from mobile_spinenet import box_coder
from mobile_spinenet.backend import keras, tf
from mobile_spinenet.blocks import Ops, depthwise_he_normal
from mobile_spinenet.heads import flatten_predictions, head_initializer
from mobile_spinenet.rcnn.config import ProposalConfig

RPN_SCORES = "rpn_scores"
RPN_BOXES = "rpn_boxes"


def rpn_head(features: dict, ops: Ops, num_anchors: int, filters: int, separable: bool = False):
    """One 3x3 conv (separable for the mobile family) shared by the levels with a BN per level, then
    a 1x1 objectness logit and a 1x1 box code per anchor: ``(logits [B, N], codes [B, N, 4])`` in
    the order of the anchors (level, row, column, anchor)."""
    if separable:
        depthwise = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                                 depthwise_initializer=depthwise_he_normal(), name="rpn_conv_dw")
        pointwise = keras.layers.Conv2D(filters, 1, use_bias=False, name="rpn_conv")
        conv = lambda x: pointwise(depthwise(x))  # noqa: E731
    else:
        conv = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=head_initializer(),
                                   name="rpn_conv")
    scores = keras.layers.Conv2D(num_anchors, 1, kernel_initializer=head_initializer(), name="rpn_score")
    boxes = keras.layers.Conv2D(4 * num_anchors, 1, kernel_initializer=head_initializer(), name="rpn_box")
    score_maps, box_maps = [], []
    for level in sorted(features):
        x = ops.act(ops.norm(conv(features[level]), name=f"rpn_conv_bn_p{level}"), name=f"rpn_conv_act_p{level}")
        score_maps.append(scores(x))
        box_maps.append(boxes(x))
    logits = keras.layers.Reshape((-1,), name=RPN_SCORES)(flatten_predictions(score_maps, 1, "rpn_scores_flat"))
    return logits, flatten_predictions(box_maps, 4, RPN_BOXES)


def generate_proposals(logits, codes, anchors, level_counts, image_size: int, config: ProposalConfig):
    """``(boxes [B, P, 4] pixels, scores [B, P], valid [B, P] bool)``, P = ``config.num_proposals``.

    ``anchors [N, 4]`` and ``level_counts`` (anchors per level, in order) match the RPN outputs.
    Proposals carry no gradient: the second stage learns from them as fixed boxes."""
    logits, codes = tf.stop_gradient(logits), tf.stop_gradient(codes)
    boxes_per_level, scores_per_level = [], []
    start = 0
    for count in level_counts:
        level_logits = logits[:, start:start + count]
        k = min(config.pre_nms_top_k, count)
        top_logits, top = tf.math.top_k(level_logits, k=k)
        level_codes = tf.gather(codes[:, start:start + count], top, batch_dims=1)
        level_anchors = tf.gather(tf.constant(anchors[start:start + count], tf.float32), top)
        boxes = tf.clip_by_value(box_coder.decode(level_codes, level_anchors), 0.0, float(image_size))
        scores = tf.sigmoid(top_logits)
        keep = min(config.num_proposals, k)
        index, valid_count = tf.image.non_max_suppression_padded(
            boxes, scores, keep, iou_threshold=config.nms_iou, score_threshold=float("-inf"),
            pad_to_max_output_size=True)
        valid = tf.range(keep)[None, :] < valid_count[:, None]
        boxes_per_level.append(tf.where(valid[..., None], tf.gather(boxes, index, batch_dims=1), 0.0))
        scores_per_level.append(tf.where(valid, tf.gather(scores, index, batch_dims=1), -1.0))
        start += count
    boxes, scores = tf.concat(boxes_per_level, axis=1), tf.concat(scores_per_level, axis=1)
    k = min(config.num_proposals, int(boxes.shape[1]))
    scores, best = tf.math.top_k(scores, k=k)
    boxes = tf.gather(boxes, best, batch_dims=1)
    return boxes, scores, scores >= 0.0
