"""The feature pyramids (P3..P7) the detectors of the kit are built on: SpineNet (both families,
with their build options) and ResNet-50-FPN, and the optional fixed input normalisation layer of
imported models. RetinaNet and classifiers (:mod:`mobile_spinenet.zoo`) and Mask R-CNN
(:mod:`mobile_spinenet.rcnn.model`) take their pyramid from here."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from mobile_spinenet.architecture import Architecture
from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops
from mobile_spinenet.data.images import input_affine
from mobile_spinenet.registry import ModelInfo
from mobile_spinenet.resnet_fpn import fpn, resnet50
from mobile_spinenet.spinenet import build_spinenet
from mobile_spinenet.specs import NAMED_SPECS


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


def feature_pyramid(info: ModelInfo, inputs, ops: Ops, spec=None, stochastic_depth: float = 0.0,
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
    if isinstance(spec, Architecture):
        if spec.base != info.model_id:
            raise ValueError(f"the architecture's base is {spec.base}, not {info.model_id}; build it as {spec.base}")
        config = spec.spinenet_config(config)
    elif spec is not None:
        if isinstance(spec, str) and spec not in NAMED_SPECS:
            raise ValueError(f"unknown spec {spec!r}; named specs: {', '.join(NAMED_SPECS)}")
        config = replace(config, spec=NAMED_SPECS[spec] if isinstance(spec, str) else tuple(spec))
    return build_spinenet(inputs, replace(config, stochastic_depth=stochastic_depth), ops)
