"""The model zoo: every model id the kit builds, as data, and one ``build_model``."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from mobile_spinenet.anchors import RetinaNetAnchors, SSDAnchors
from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops
from mobile_spinenet.data.images import input_affine
from mobile_spinenet.heads import BOX_OUTPUT, CLASS_OUTPUT, classification_head, retinanet_head
from mobile_spinenet.mobilenet_v3 import mobilenet_v3_classifier
from mobile_spinenet.resnet_fpn import fpn, resnet50
from mobile_spinenet.registry import (FAMILIES, MODELS, TASKS, ModelInfo, check_image_size,  # noqa: F401
                                      family_of, get_model_info)
from mobile_spinenet.spinenet import build_spinenet
from mobile_spinenet.specs import NAMED_SPECS
from mobile_spinenet.ssdlite import ssd_feature_sizes, ssdlite


def model_anchors(model_id: str, image_size: Optional[int] = None, anchor_scale: Optional[float] = None) -> np.ndarray:
    """Anchor boxes ``[N, 4]`` (ymin, xmin, ymax, xmax, pixels) in the order of the model's outputs.
    ``anchor_scale``: RetinaNet's base anchor size in strides (None: the kit's 4; Model Garden's
    SpineNet configs use 3)."""
    info = get_model_info(model_id)
    image_size = image_size or info.image_size
    if info.kind == "ssdlite":
        if anchor_scale is not None:
            raise ValueError(f"{model_id} has SSD anchors, which take no anchor scale")
        return SSDAnchors(ssd_feature_sizes(image_size)).boxes(image_size)
    if anchor_scale is None:
        return RetinaNetAnchors().boxes(image_size)
    return RetinaNetAnchors(anchor_scale=float(anchor_scale)).boxes(image_size)


def normalized_input(inputs, normalization: str = "kit"):
    """The model's first layer when it expects another input normalisation than the kit's: a fixed
    per-channel affine (a 1x1 depthwise conv with bias, which int8 converters and XNNPACK take)."""
    if normalization == "kit":
        return inputs
    scale, offset = input_affine(normalization)
    return keras.layers.DepthwiseConv2D(
        1, use_bias=True, trainable=False, name="input_normalization",
        depthwise_initializer=keras.initializers.Constant(np.reshape(scale, (1, 1, 3, 1))),
        bias_initializer=keras.initializers.Constant(np.asarray(offset)))(inputs)


def _features(info: ModelInfo, inputs, ops: Ops, spec=None, stochastic_depth: float = 0.0,
              se_gate: Optional[str] = None, channel_divisor: Optional[int] = None,
              se_ratio: Optional[float] = None) -> dict:
    """P3..P7 of a SpineNet or ResNet-50-FPN backbone."""
    if info.kind == "resnet_fpn":
        return fpn(resnet50(inputs, ops), ops, info.head_filters)
    if info.kind != "spinenet":
        raise ValueError(f"{info.model_id} has no P3..P7 feature pyramid")
    config = info.spinenet
    if se_ratio is not None:
        if config.family != "mbconv":
            raise ValueError(f"{info.model_id} has bottleneck blocks, which have no squeeze-excite ratio")
        if not 0.0 <= se_ratio < 1.0:
            raise ValueError(f"se_ratio must be in [0, 1) (0: no squeeze-excite), got {se_ratio}")
        config = replace(config, se_ratio=float(se_ratio))
    if se_gate is not None:
        if not config.se_ratio or config.family != "mbconv":
            raise ValueError(f"{info.model_id} has no squeeze-excite, so no SE gate to set")
        config = replace(config, se_gate=se_gate)
    if channel_divisor is not None:
        if not isinstance(channel_divisor, int) or channel_divisor < 1:
            raise ValueError(f"channel_divisor must be a positive integer, got {channel_divisor!r}")
        config = replace(config, channel_divisor=channel_divisor)
    if spec is not None:
        if isinstance(spec, str) and spec not in NAMED_SPECS:
            raise ValueError(f"unknown spec {spec!r}; named specs: {', '.join(NAMED_SPECS)}")
        config = replace(config, spec=NAMED_SPECS[spec] if isinstance(spec, str) else tuple(spec))
    return build_spinenet(inputs, replace(config, stochastic_depth=stochastic_depth), ops)


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
    info, ops, inputs, name = _prepare(model_id, "detection", image_size, batch_size, activation, False, None)
    features = _features(info, inputs, ops, spec)
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
    over the anchors of :func:`model_anchors`; classifiers output ``[B, K]`` logits.
    Inputs are RGB images scaled to [-1, 1]. ``spec`` replaces the SpineNet block spec
    (a name from ``NAMED_SPECS`` or a sequence of BlockSpec). ``share_head_convs=False``
    unrolls the RetinaNet head's shared convs per level (for int8 export, see
    ``mobile_spinenet.quantization.qat``). Options of imported Model Garden models: ``se_gate``
    (SpineNet-Mobile's squeeze-excite gate), ``input_normalization`` ("imagenet": the model converts
    the kit's input in a first fixed layer) and ``head_filters`` (the RetinaNet head's width).
    Latency options of SpineNet (None keeps the id's own, the paper's): ``channel_divisor`` rounds
    every width to a multiple of it, ``se_ratio`` sets the squeeze-excite ratio of mobile blocks
    (0: none).
    """
    family_of(model_id).check_options(model_id, activation=activation, spec=spec, stochastic_depth=stochastic_depth,
                                      se_gate=se_gate, head_filters=head_filters, channel_divisor=channel_divisor,
                                      se_ratio=None if se_ratio is None else f"{se_ratio:g}")  # 0 is a setting
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
    features = _features(info, normalized_input(inputs, input_normalization), ops, spec, stochastic_depth, se_gate,
                         channel_divisor, se_ratio)
    if task == "classification":
        return keras.Model(inputs, classification_head(features, num_classes), name=name)
    classes, boxes = retinanet_head(features, ops, num_classes, RetinaNetAnchors().num_anchors,
                                    head_filters or info.head_filters, info.head_convs, info.head_separable,
                                    share_convs=share_head_convs)
    return keras.Model(inputs, {CLASS_OUTPUT: classes, BOX_OUTPUT: boxes}, name=name)
