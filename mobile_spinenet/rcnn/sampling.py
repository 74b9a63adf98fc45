"""Training targets of both stages, computed in the graph from padded ground truth.

Ground truth of a batch is padded to G boxes per image: ``gt_boxes [B, G, 4]`` (pixels) and
``gt_classes [B, G]`` (0-based class index, -1 for padding).

- RPN: an anchor is positive at IoU >= 0.7 with some box, or when it is a box's best anchor
  (every box gets one); negative below 0.3; 256 per image are sampled, at most half positive.
- Second stage: the proposals and the ground-truth boxes themselves; a RoI is foreground at IoU
  >= 0.5 (its class is its box's), else background; 512 per image are sampled, at most 25%
  foreground, and the first 128 foreground ones of them train the mask head.
Sampling is uniform at random among the candidates of each kind (``tf.random``, so it follows the
trainer's seed)."""
from __future__ import annotations

from mobile_spinenet import box_coder
from mobile_spinenet.backend import tf
from mobile_spinenet.data.masks import cell_centre_crops, relative_window
from mobile_spinenet.rcnn.config import MaskRCNNConfig


def _iou_with_padding(boxes, gt_boxes, gt_valid):
    """IoU ``[B, N, G]``; -1 against padded ground truth."""
    iou = tf.map_fn(lambda pair: box_coder.pairwise_iou(pair[0], pair[1]), (boxes, gt_boxes),
                    fn_output_signature=tf.float32)
    return tf.where(gt_valid[:, None, :], iou, -1.0)


def _pick_at_random(candidates, quota):
    """``candidates [B, N]`` bool, ``quota [B]`` int: a random ``quota`` of each row's candidates."""
    keys = tf.where(candidates, tf.random.uniform(tf.shape(candidates)), -1.0)
    rank = tf.argsort(tf.argsort(keys, axis=1, direction="DESCENDING"), axis=1)
    return candidates & (rank < quota[:, None])


def _count(mask):
    return tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)


def rpn_targets(anchors, gt_boxes, gt_classes, config: MaskRCNNConfig):
    """``(labels [B, N] float: 1 positive, 0 negative, -1 not sampled; box codes [B, N, 4])``."""
    gt_valid = gt_classes >= 0
    batch = tf.shape(gt_boxes)[0]
    anchors = tf.broadcast_to(tf.constant(anchors, tf.float32)[None], [batch, anchors.shape[0], 4])
    iou = _iou_with_padding(anchors, gt_boxes, gt_valid)  # [B, N, G]
    best_iou, best_gt = tf.reduce_max(iou, axis=2), tf.argmax(iou, axis=2, output_type=tf.int32)
    # every box's best anchor(s) are positive, however low their IoU (unless the box has none > 0)
    best_for_gt = tf.reduce_max(iou, axis=1, keepdims=True)  # [B, 1, G]
    forced = tf.reduce_any((iou >= best_for_gt) & (best_for_gt > 0.0) & gt_valid[:, None, :], axis=2)
    positive = (best_iou >= config.rpn_positive_iou) | forced
    negative = (best_iou < config.rpn_negative_iou) & ~positive
    max_positive = int(config.rpn_sampled_anchors * config.rpn_positive_fraction)
    positive = _pick_at_random(positive, tf.minimum(_count(positive), max_positive))
    negative = _pick_at_random(negative, config.rpn_sampled_anchors - _count(positive))
    labels = tf.where(positive, 1.0, tf.where(negative, 0.0, -1.0))
    matched = tf.gather(gt_boxes, best_gt, batch_dims=1)
    return labels, box_coder.encode(matched, anchors)


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, config: MaskRCNNConfig) -> dict:
    """The RoIs the second stage trains on, ``S = config.sampled_rois`` per image:

    ``rois [B, S, 4]``, ``classes [B, S]`` (0 background, k + 1 for class k), ``box_codes [B, S, 4]``
    (Fast R-CNN codes of the matched box), ``weights [B, S]`` (1 for a sampled RoI, 0 for padding
    when an image has fewer candidates), ``gt_index [B, S]`` (matched ground-truth box) and
    ``mask_rois`` / ``mask_classes`` / ``mask_gt_index`` / ``mask_weights`` for the first
    ``config.sampled_masks`` foreground RoIs."""
    gt_valid = gt_classes >= 0
    rois = tf.concat([proposals, gt_boxes], axis=1)
    valid = tf.concat([proposal_valid, gt_valid], axis=1)
    iou = _iou_with_padding(rois, gt_boxes, gt_valid)
    best_iou, best_gt = tf.reduce_max(iou, axis=2), tf.argmax(iou, axis=2, output_type=tf.int32)
    foreground = valid & (best_iou >= config.foreground_iou)
    background = valid & ~foreground
    max_foreground = int(config.sampled_rois * config.foreground_fraction)
    foreground = _pick_at_random(foreground, tf.minimum(_count(foreground), max_foreground))
    background = _pick_at_random(background, config.sampled_rois - _count(foreground))
    # sampled foreground first, then sampled background, then the rest (weight 0)
    priority = tf.where(foreground, 2.0, tf.where(background, 1.0, 0.0))
    priority += tf.random.uniform(tf.shape(priority), 0.0, 0.5)
    _, order = tf.math.top_k(priority, k=config.sampled_rois)
    take = lambda t: tf.gather(t, order, batch_dims=1)  # noqa: E731
    sampled_rois, is_foreground = take(rois), take(foreground)
    weights = tf.cast(take(foreground | background), tf.float32)
    gt_index = take(best_gt)
    classes = tf.where(is_foreground, tf.gather(gt_classes, gt_index, batch_dims=1) + 1, 0)
    codes = box_coder.encode(tf.gather(gt_boxes, gt_index, batch_dims=1), sampled_rois, config.box_scale_factors)
    masks = config.sampled_masks
    return {"rois": sampled_rois, "classes": classes, "box_codes": codes, "weights": weights, "gt_index": gt_index,
            "mask_rois": sampled_rois[:, :masks], "mask_classes": classes[:, :masks],
            "mask_gt_index": gt_index[:, :masks], "mask_weights": tf.cast(is_foreground[:, :masks], tf.float32)}


def mask_targets(rois, gt_boxes, gt_masks, gt_index, mask_size: int):
    """Binary targets ``[B, R, mask_size, mask_size]`` of ``rois [B, R, 4]``: each matched box's
    mask (``gt_masks [B, G, M, M]``, the mask cropped to its box and resized to M x M) resampled
    onto the RoI's grid of ``mask_size`` cells (bilinear at cell centres, then >= 0.5)."""
    matched_boxes = tf.gather(gt_boxes, gt_index, batch_dims=1)  # [B, R, 4]
    size = int(gt_masks.shape[-1])
    crops = cell_centre_crops(relative_window(rois, matched_boxes), mask_size, size)
    batch, rois_per_image = tf.shape(rois)[0], tf.shape(rois)[1]
    masks = tf.gather(gt_masks, gt_index, batch_dims=1)  # [B, R, M, M]
    flat_masks = tf.reshape(masks, [-1, size, size, 1])
    resized = tf.image.crop_and_resize(flat_masks, tf.reshape(crops, [-1, 4]), tf.range(batch * rois_per_image),
                                       [mask_size, mask_size], extrapolation_value=0.0)
    return tf.cast(tf.reshape(resized, [batch, rois_per_image, mask_size, mask_size]) >= 0.5, tf.float32)
