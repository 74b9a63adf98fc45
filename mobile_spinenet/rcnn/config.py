"""Mask R-CNN's settings as data: Model Garden's ``maskrcnn_spinenet_coco`` experiment (the paper's
implementation), which differs from Detectron2's R50-FPN default in its levels (P3..P7, the levels
SpineNet outputs, instead of P2..P6) and its anchor size (3 strides instead of 8)."""
from __future__ import annotations

from dataclasses import dataclass

from mobile_spinenet.anchors import RetinaNetAnchors


@dataclass(frozen=True)
class ProposalConfig:
    """RPN boxes -> proposals: per level the ``pre_nms_top_k`` best, decoded, clipped to the image,
    NMS at ``nms_iou``; then the ``num_proposals`` best over all levels."""

    pre_nms_top_k: int = 2000
    nms_iou: float = 0.7
    num_proposals: int = 1000


@dataclass(frozen=True)
class MaskRCNNConfig:
    # RPN: one anchor size per level (3 strides), three shapes; Model Garden's SpineNet Mask R-CNN
    anchors: RetinaNetAnchors = RetinaNetAnchors(num_scales=1, anchor_scale=3.0)
    rpn_positive_iou: float = 0.7
    rpn_negative_iou: float = 0.3
    rpn_sampled_anchors: int = 256  # per image
    rpn_positive_fraction: float = 0.5
    rpn_huber_delta: float = 1.0 / 9.0
    train_proposals: ProposalConfig = ProposalConfig(pre_nms_top_k=2000, num_proposals=1000)
    test_proposals: ProposalConfig = ProposalConfig(pre_nms_top_k=1000, num_proposals=1000)  # Table 5: 1000
    # second stage: proposals (with the ground truth mixed in) sampled for the box and mask heads
    sampled_rois: int = 512
    foreground_fraction: float = 0.25
    foreground_iou: float = 0.5
    sampled_masks: int = 128  # foreground RoIs that train the mask head
    box_scale_factors: tuple = (10.0, 10.0, 5.0, 5.0)  # Fast R-CNN's box code weights
    box_roi_size: int = 7
    mask_roi_size: int = 14
    sampling_ratio: int = 2
    box_head_convs: int = 4  # the "4conv1fc" head of Model Garden's SpineNet Mask R-CNN
    fc_dims: int = 1024
    mask_head_convs: int = 4
    frcnn_huber_delta: float = 1.0
    # detections: per-class NMS of the softmax scores, as Model Garden's detection generator
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 5000
    gt_mask_size: int = 112  # ground-truth masks are given cropped to their box at this size

    @property
    def mask_size(self) -> int:
        return 2 * self.mask_roi_size  # the mask head upsamples its RoI features once (28 x 28)
