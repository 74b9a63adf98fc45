"""Mask R-CNN (He et al., 2017) on the kit's feature pyramids: any SpineNet id (both families) or
ResNet-50-FPN, with the settings of :class:`~mobile_spinenet.rcnn.config.MaskRCNNConfig`.

The model is a ``keras.Model`` made of three Keras models, so each can be counted on its own and
the whole trains under ``tf.distribute`` like any other model of the kit:

- ``pyramid``: image -> P3..P7 and the RPN's objectness logits and box codes over the anchors;
- ``box_head``: 7x7 RoI features -> class logits and class-specific box codes;
- ``mask_head``: 14x14 RoI features -> 28x28 mask logits per class.

Called with ``training=True`` on ``{"image", "gt_boxes", "gt_classes", "gt_masks"}`` it returns the
predictions and their targets (what :mod:`mobile_spinenet.rcnn.losses` takes); called on images
it returns detections: ``boxes [B, D, 4]`` (pixels), ``scores``, ``classes`` (0-based),
``count [B]`` and ``masks [B, D, 28, 28]`` (probabilities inside each box)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Optional

import numpy as np

from mobile_spinenet import box_coder
from mobile_spinenet.architecture import architecture_activation
from mobile_spinenet.backend import keras, tf
from mobile_spinenet.blocks import Ops
from mobile_spinenet.rcnn.config import MaskRCNNConfig
from mobile_spinenet.rcnn.heads import ROI_BOXES, ROI_CLASSES, box_head, mask_head
from mobile_spinenet.rcnn.roi_align import RoIAlignConfig, roi_align
from mobile_spinenet.rcnn.rpn import RPN_BOXES, RPN_SCORES, generate_proposals, rpn_head
from mobile_spinenet.rcnn.sampling import mask_targets, rpn_targets, sample_rois
from mobile_spinenet.pyramids import feature_pyramid, normalized_input
from mobile_spinenet.registry import INSTANCE_SEGMENTATION, check_image_size, family_of, get_model_info

LEVELS = tuple(range(3, 8))


class MaskRCNN(keras.Model):
    def __init__(self, pyramid: keras.Model, box_head_model: keras.Model, mask_head_model: keras.Model,
                 image_size: int, num_classes: int, config: MaskRCNNConfig, **kwargs):
        super().__init__(**kwargs)
        self.pyramid, self.box_head, self.mask_head = pyramid, box_head_model, mask_head_model
        self.image_size, self.num_classes, self.config = image_size, num_classes, config
        grids = config.anchors.grids(image_size)
        self.anchors = config.anchors.boxes(image_size)
        self.level_counts = [g.height * g.width * len(g.shapes) for g in grids]

    def _pool(self, outputs, boxes, size):
        features = {level: outputs[f"p{level}"] for level in LEVELS}
        return roi_align(features, boxes, RoIAlignConfig(size, self.config.sampling_ratio))

    def _heads(self, head, pooled, training):
        """Apply a RoI head to ``[B, R, S, S, C]``; its outputs keep the ``[B, R, ...]`` layout."""
        shape = tf.shape(pooled)
        flat = tf.reshape(pooled, tf.concat([[-1], shape[2:]], axis=0))
        out = head(flat, training=training)
        unflatten = lambda t: tf.reshape(t, tf.concat([shape[:2], tf.shape(t)[1:]], axis=0))  # noqa: E731
        return {k: unflatten(v) for k, v in out.items()} if isinstance(out, dict) else unflatten(out)

    def call(self, inputs, training=False):
        if training:
            return self._train_outputs(inputs)
        image = inputs["image"] if isinstance(inputs, dict) else inputs
        return self.detect(image)

    def _train_outputs(self, inputs) -> dict:
        config = self.config
        outputs = self.pyramid(inputs["image"], training=True)
        gt_boxes, gt_classes = inputs["gt_boxes"], inputs["gt_classes"]
        rpn_labels, rpn_codes = rpn_targets(self.anchors, gt_boxes, gt_classes, config)
        proposals, _, valid = generate_proposals(outputs[RPN_SCORES], outputs[RPN_BOXES], self.anchors,
                                                 self.level_counts, self.image_size, config.train_proposals)
        rois = sample_rois(proposals, valid, gt_boxes, gt_classes, config)
        box_out = self._heads(self.box_head, self._pool(outputs, rois["rois"], config.box_roi_size), True)
        mask_logits = self._heads(self.mask_head, self._pool(outputs, rois["mask_rois"], config.mask_roi_size), True)
        class_index = tf.maximum(rois["mask_classes"] - 1, 0)
        mask_logits = tf.gather(tf.transpose(mask_logits, [0, 1, 4, 2, 3]), class_index, batch_dims=2)
        return {"rpn_logits": outputs[RPN_SCORES], "rpn_codes": outputs[RPN_BOXES], "rpn_labels": rpn_labels,
                "rpn_targets": rpn_codes, "roi_logits": box_out[ROI_CLASSES], "roi_codes": box_out[ROI_BOXES],
                "roi_classes": rois["classes"], "roi_targets": rois["box_codes"], "roi_weights": rois["weights"],
                "mask_logits": mask_logits, "mask_weights": rois["mask_weights"],
                "mask_targets": mask_targets(rois["mask_rois"], gt_boxes, inputs["gt_masks"], rois["mask_gt_index"],
                                             config.mask_size)}

    def detect(self, image) -> dict:
        config = self.config
        outputs = self.pyramid(image, training=False)
        proposals, _, valid = generate_proposals(outputs[RPN_SCORES], outputs[RPN_BOXES], self.anchors,
                                                 self.level_counts, self.image_size, config.test_proposals)
        box_out = self._heads(self.box_head, self._pool(outputs, proposals, config.box_roi_size), False)
        probabilities = tf.nn.softmax(box_out[ROI_CLASSES], axis=-1)[..., 1:]  # [B, P, K]
        probabilities = tf.where(valid[..., None], probabilities, 0.0)
        codes = tf.reshape(box_out[ROI_BOXES], tf.concat([tf.shape(proposals)[:2], [self.num_classes, 4]], axis=0))
        boxes = box_coder.decode(codes, proposals[:, :, None, :], config.box_scale_factors)
        boxes = tf.clip_by_value(boxes, 0.0, float(self.image_size))  # [B, P, K, 4]
        result = tf.image.combined_non_max_suppression(
            boxes, probabilities, max_output_size_per_class=config.max_detections,
            max_total_size=config.max_detections, iou_threshold=config.nms_iou,
            score_threshold=config.score_threshold, clip_boxes=False)
        detections = result.nmsed_boxes
        classes = tf.cast(result.nmsed_classes, tf.int32)
        mask_logits = self._heads(self.mask_head, self._pool(outputs, detections, config.mask_roi_size), False)
        masks = tf.gather(tf.transpose(mask_logits, [0, 1, 4, 2, 3]), classes, batch_dims=2)
        return {"boxes": detections, "scores": result.nmsed_scores, "classes": classes,
                "count": result.valid_detections, "masks": tf.sigmoid(masks)}

    def get_config(self):
        return {"image_size": self.image_size, "num_classes": self.num_classes, "config": asdict(self.config)}


def build_mask_rcnn(model_id: str, image_size: Optional[int] = None, num_classes: int = 80,
                    config: MaskRCNNConfig = MaskRCNNConfig(), activation: Optional[str] = None,
                    sync_bn: bool = False, bn_momentum: float = 0.99, head_filters: Optional[int] = None,
                    dropblock_keep_prob: Optional[float] = None, input_normalization: str = "kit", spec=None,
                    stochastic_depth: float = 0.0, se_gate: Optional[str] = None, channel_divisor: Optional[int] = None,
                    se_ratio: Optional[float] = None) -> MaskRCNN:
    """Mask R-CNN on ``model_id``'s P3..P7 (a SpineNet id or ``resnet50_fpn``), with the pyramid's
    build options of :func:`mobile_spinenet.zoo.build_model`. The RPN and the RoI heads are as wide
    as the pyramid's endpoints (``head_filters`` overrides); the mobile family uses separable convs
    in them, as in its RetinaNet head."""
    info = get_model_info(model_id)
    if info.kind not in ("spinenet", "resnet_fpn"):
        raise ValueError(f"{model_id} ({family_of(model_id).display}) has no P3..P7 pyramid for Mask R-CNN; "
                         f"use a SpineNet id or resnet50_fpn")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    image_size = image_size or info.image_size
    check_image_size(model_id, image_size, INSTANCE_SEGMENTATION)
    family_of(model_id).check_options(model_id, activation=activation, head_filters=head_filters, spec=spec,
                                      stochastic_depth=stochastic_depth, se_gate=se_gate,
                                      channel_divisor=channel_divisor,
                                      se_ratio=se_ratio)
    ops = Ops(activation=activation or architecture_activation(spec) or info.activation, sync_bn=sync_bn, bn_momentum=bn_momentum,
              dropblock_keep_prob=dropblock_keep_prob)
    image = keras.Input((image_size, image_size, 3), name="image")
    features = feature_pyramid(info, normalized_input(image, input_normalization), ops, spec, stochastic_depth,
                               se_gate, channel_divisor, se_ratio)
    channels = int(features[3].shape[-1])
    filters = head_filters or channels
    separable = info.head_separable
    logits, codes = rpn_head(features, ops, config.anchors.num_anchors, filters, separable)
    pyramid = keras.Model(image, {**{f"p{level}": features[level] for level in LEVELS},
                                  RPN_SCORES: logits, RPN_BOXES: codes}, name=f"{model_id}_pyramid_rpn")
    boxes = box_head(ops, config.box_roi_size, channels, num_classes, filters, config.box_head_convs, config.fc_dims,
                     separable)
    masks = mask_head(ops, config.mask_roi_size, channels, num_classes, filters, config.mask_head_convs, separable)
    model = MaskRCNN(pyramid, boxes, masks, image_size, num_classes, config, name=f"{model_id}_mask_rcnn_{image_size}")
    model(np.zeros((1, image_size, image_size, 3), np.float32))  # build every weight
    return model
