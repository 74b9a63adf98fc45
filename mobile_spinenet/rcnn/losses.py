"""Mask R-CNN's four losses, from what :class:`~mobile_spinenet.rcnn.model.MaskRCNN` returns in
training. Each is a mean over this replica's batch divided the way Model Garden's are:

- RPN objectness: sigmoid cross-entropy over the sampled anchors; RPN boxes: Huber (delta 1/9)
  summed over the positive anchors' codes, over the sampled anchors;
- Fast R-CNN classes: softmax cross-entropy over the sampled RoIs; boxes: Huber (delta 1) of the
  true class's codes over the sampled RoIs (background RoIs add none);
- masks: per-pixel sigmoid cross-entropy of the true class's mask over the foreground RoIs."""
from __future__ import annotations

from mobile_spinenet.backend import tf
from mobile_spinenet.rcnn.config import MaskRCNNConfig


def _huber(error, delta):
    absolute = tf.abs(error)
    return tf.where(absolute < delta, 0.5 * error ** 2, delta * (absolute - 0.5 * delta))


def mask_rcnn_losses(outputs: dict, num_classes: int, config: MaskRCNNConfig = MaskRCNNConfig()) -> dict:
    """``{"rpn_score_loss", "rpn_box_loss", "class_loss", "box_loss", "mask_loss"}`` (scalars)."""
    labels = outputs["rpn_labels"]
    sampled = tf.cast(labels >= 0, tf.float32)
    positive = tf.cast(labels > 0, tf.float32)
    anchors = tf.maximum(tf.reduce_sum(sampled), 1.0)
    rpn_ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.maximum(labels, 0.0), logits=outputs["rpn_logits"])
    rpn_score = tf.reduce_sum(rpn_ce * sampled) / anchors
    rpn_targets = tf.where(labels[..., None] > 0, outputs["rpn_targets"], outputs["rpn_codes"])  # 0 error elsewhere
    rpn_huber = tf.reduce_sum(_huber(outputs["rpn_codes"] - rpn_targets, config.rpn_huber_delta), -1)
    rpn_box = tf.reduce_sum(rpn_huber * positive) / anchors

    weights, classes = outputs["roi_weights"], outputs["roi_classes"]
    rois = tf.maximum(tf.reduce_sum(weights), 1.0)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=outputs["roi_logits"])
    class_loss = tf.reduce_sum(ce * weights) / rois
    codes = tf.reshape(outputs["roi_codes"], tf.concat([tf.shape(classes), [num_classes, 4]], axis=0))
    true_codes = tf.gather(codes, tf.maximum(classes - 1, 0), batch_dims=2)  # [B, S, 4]
    foreground = tf.cast(classes > 0, tf.float32) * weights
    # background and padded RoIs have no box target: their error is 0, so no value of theirs (a padded
    # RoI's codes are huge) reaches the loss or, through the branch tf.where does not take, the gradient
    roi_targets = tf.where(foreground[..., None] > 0, outputs["roi_targets"], tf.stop_gradient(true_codes))
    box_huber = tf.reduce_sum(_huber(true_codes - roi_targets, config.frcnn_huber_delta), -1)
    box_loss = tf.reduce_sum(box_huber * foreground) / rois

    mask_weights = outputs["mask_weights"]
    mask_ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=outputs["mask_targets"], logits=outputs["mask_logits"])
    pixels = tf.maximum(tf.reduce_sum(mask_weights) * float(config.mask_size ** 2), 1.0)
    mask_loss = tf.reduce_sum(tf.reduce_sum(mask_ce, axis=[2, 3]) * mask_weights) / pixels
    return {"rpn_score_loss": rpn_score, "rpn_box_loss": rpn_box, "class_loss": class_loss, "box_loss": box_loss,
            "mask_loss": mask_loss}
