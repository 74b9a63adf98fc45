"""The model zoo: every model id the kit builds, as data, and one ``build_model``."""
from __future__ import annotations

from typing import Optional

import numpy as np

from mobile_spinenet.anchors import RetinaNetAnchors, SSDAnchors
from mobile_spinenet.architecture import architecture_activation
from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops
from mobile_spinenet.heads import BOX_OUTPUT, CLASS_OUTPUT, classification_head, retinanet_head
from mobile_spinenet.mobilenet_v3 import mobilenet_v3_classifier
from mobile_spinenet.pyramids import feature_pyramid, normalized_input
from mobile_spinenet.registry import (FAMILIES, INSTANCE_SEGMENTATION, MODELS, TASKS, ModelInfo,  # noqa: F401
                                      check_image_size, family_of, get_model_info)
from mobile_spinenet.ssdlite import ssd_feature_sizes, ssdlite


# The settings that size a detector's anchors: training config fields, and keys of an export's
# report, so that whoever decodes the raw outputs builds the anchors the model was trained on.
ANCHOR_SETTINGS = ("anchor_scale", "ssd_min_scale")


def anchor_settings(source) -> dict:
    """The anchor settings of a training config or an export report (a dict), by keyword, for
    :func:`model_anchors`; unset ones (None, or absent from an older report) are left out."""
    values = {name: source.get(name) if isinstance(source, dict) else getattr(source, name, None)
              for name in ANCHOR_SETTINGS}
    return {name: value for name, value in values.items() if value is not None}


def model_anchors(model_id: str, image_size: Optional[int] = None, anchor_scale: Optional[float] = None,
                  ssd_min_scale: Optional[float] = None) -> np.ndarray:
    """Anchor boxes ``[N, 4]`` (ymin, xmin, ymax, xmax, pixels) in the order of the model's outputs.
    ``anchor_scale``: RetinaNet's base anchor size in strides (None: the kit's 4; Model Garden's
    SpineNet configs use 3). ``ssd_min_scale``: SSDLite's smallest anchor scale as a share of the
    input (None: MobileNet-SSDLite's 0.2; its first map's square is half of it)."""
    info = get_model_info(model_id)
    image_size = image_size or info.image_size
    if info.kind == "ssdlite":
        if anchor_scale is not None:
            raise ValueError(f"{model_id} has SSD anchors, which take no anchor scale (its anchors: ssd_min_scale)")
        sizes = ssd_feature_sizes(image_size)
        anchors = SSDAnchors(sizes) if ssd_min_scale is None else SSDAnchors(sizes, min_scale=float(ssd_min_scale))
        return anchors.boxes(image_size)
    if ssd_min_scale is not None:
        raise ValueError(f"{model_id} has RetinaNet anchors, which take no SSD min scale (its anchors: anchor_scale)")
    if anchor_scale is None:
        return RetinaNetAnchors().boxes(image_size)
    return RetinaNetAnchors(anchor_scale=float(anchor_scale)).boxes(image_size)


def _prepare(model_id, task, image_size, batch_size, activation, sync_bn, dropblock_keep_prob,
             bn_momentum=0.99):
    info = get_model_info(model_id)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    image_size = image_size or info.image_size
    check_image_size(model_id, image_size, task)
    ops = Ops(activation=activation or info.activation, sync_bn=sync_bn,
              dropblock_keep_prob=dropblock_keep_prob, bn_momentum=bn_momentum)
    inputs = keras.Input((image_size, image_size, 3), batch_size=batch_size, name="image")
    return info, ops, inputs, f"{model_id}_{task}_{image_size}"


def build_backbone(model_id: str, image_size: Optional[int] = None, batch_size: Optional[int] = None,
                   spec=None, activation: Optional[str] = None) -> keras.Model:
    """The feature pyramid alone: outputs ``{"p3": ..., "p7": ...}``."""
    family_of(model_id).check_options(model_id, activation=activation, spec=spec)
    activation = activation or architecture_activation(spec)
    info, ops, inputs, name = _prepare(model_id, "detection", image_size, batch_size, activation, False, None)
    features = feature_pyramid(info, inputs, ops, spec)
    return keras.Model(inputs, {f"p{level}": x for level, x in features.items()}, name=f"{name}_backbone")


def build_model(model_id: str, task: str = "detection", image_size: Optional[int] = None,
                num_classes: int = 80, batch_size: Optional[int] = None, spec=None,
                activation: Optional[str] = None, sync_bn: bool = False,
                stochastic_depth: float = 0.0, dropblock_keep_prob: Optional[float] = None,
                bn_momentum: float = 0.99, share_head_convs: bool = True, se_gate: Optional[str] = None,
                input_normalization: str = "kit", head_filters: Optional[int] = None,
                channel_divisor: Optional[int] = None, se_ratio: Optional[float] = None) -> keras.Model:
    """Build ``model_id`` for ``task``.

    Detection models output ``{"classes": [B, N, K] logits, "boxes": [B, N, 4] codes}``
    over the anchors of :func:`model_anchors`; classifiers output ``[B, K]`` logits; task
    ``instance-segmentation`` is Mask R-CNN (:func:`mobile_spinenet.rcnn.model.build_mask_rcnn`).
    Inputs are RGB images scaled to [-1, 1]. ``spec`` replaces the SpineNet block spec
    (a name from ``NAMED_SPECS`` or a sequence of BlockSpec). ``share_head_convs=False``
    unrolls the RetinaNet head's shared convs per level (for int8 export, see
    ``mobile_spinenet.quantization.qat``). Options of imported Model Garden models: ``se_gate``
    (SpineNet-Mobile's squeeze-excite gate), ``input_normalization`` ("imagenet": the model converts
    the kit's input in a first fixed layer) and ``head_filters`` (the RetinaNet head's width).
    Latency options of SpineNet (None keeps the id's own, the paper's): ``channel_divisor`` rounds
    every width to a multiple of it, ``se_ratio`` sets the squeeze-excite ratio of mobile blocks
    (0: none). ``spec`` may also be a whole :class:`~mobile_spinenet.architecture.Architecture`
    (a searched backbone: blocks, widths, ratios, and its activation unless ``activation`` is given).
    """
    if task == INSTANCE_SEGMENTATION:
        from mobile_spinenet.rcnn.model import build_mask_rcnn

        if not share_head_convs:
            raise ValueError("Mask R-CNN has no RetinaNet head convs to unroll")
        return build_mask_rcnn(model_id, image_size, num_classes, activation=activation, sync_bn=sync_bn,
                               dropblock_keep_prob=dropblock_keep_prob,
                               bn_momentum=bn_momentum, head_filters=head_filters,
                               input_normalization=input_normalization, spec=spec, stochastic_depth=stochastic_depth,
                               se_gate=se_gate, channel_divisor=channel_divisor, se_ratio=se_ratio)
    family_of(model_id).check_options(model_id, activation=activation, spec=spec, stochastic_depth=stochastic_depth,
                                      se_gate=se_gate, head_filters=head_filters, channel_divisor=channel_divisor,
                                      se_ratio=se_ratio)
    activation = activation or architecture_activation(spec)
    info, ops, inputs, name = _prepare(model_id, task, image_size, batch_size, activation, sync_bn,
                                       dropblock_keep_prob, bn_momentum)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if info.kind == "ssdlite":
        if input_normalization != "kit":
            raise ValueError(f"{model_id} takes the kit's input normalisation only")
        if task == "classification":  # the MobileNetV3 the SSDLite is built on, as a classifier
            return keras.Model(inputs, mobilenet_v3_classifier(inputs, ops, info.ssd_size, num_classes), name=name)
        classes, boxes = ssdlite(inputs, ops, info.ssd_size, num_classes)
        return keras.Model(inputs, {CLASS_OUTPUT: classes, BOX_OUTPUT: boxes}, name=name)
    features = feature_pyramid(info, normalized_input(inputs, input_normalization), ops, spec, stochastic_depth, se_gate,
                         channel_divisor, se_ratio)
    if task == "classification":
        return keras.Model(inputs, classification_head(features, num_classes), name=name)
    classes, boxes = retinanet_head(features, ops, num_classes, RetinaNetAnchors().num_anchors,
                                    head_filters or info.head_filters, info.head_convs, info.head_separable,
                                    share_convs=share_head_convs)
    return keras.Model(inputs, {CLASS_OUTPUT: classes, BOX_OUTPUT: boxes}, name=name)
