"""Detection and classification heads shared by every backbone of the kit."""
from __future__ import annotations

import math

from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops, depthwise_he_normal
from mobile_spinenet.resample import upsample_to

CLASS_OUTPUT = "classes"
BOX_OUTPUT = "boxes"


def prior_bias(prior_probability: float = 0.01) -> float:
    """Focal-loss bias init: every anchor starts at ``prior_probability`` foreground."""
    return -math.log((1.0 - prior_probability) / prior_probability)


def head_initializer():
    """Kernel init of detection-head convs and predictors: N(0, 0.01) (RetinaNet, Sec. 4.1)."""
    return keras.initializers.RandomNormal(stddev=0.01)


def flatten_predictions(per_level: list, width: int, name: str):
    """Reshape ``[B, H, W, A * width]`` maps to ``[B, sum(H*W*A), width]`` and concatenate."""
    flat = [keras.layers.Reshape((-1, width), name=f"{name}_flat{i}")(t) for i, t in enumerate(per_level)]
    if len(flat) == 1:
        return keras.layers.Activation("linear", name=name)(flat[0])
    return keras.layers.Concatenate(axis=1, name=name)(flat)


def retinanet_head(features: dict, ops: Ops, num_classes: int, num_anchors: int, filters: int,
                   num_convs: int = 4, separable: bool = False, prior_probability: float = 0.01,
                   share_convs: bool = True):
    """RetinaNet class and box subnets, shared across levels with a BN per level.

    With ``share_convs=False`` each level gets its own copy of every head conv (named
    ``..._p{level}``), so tfmot can fold BN into them for int8 (it folds and splits only
    layers that are used once).
    Returns ``(class_logits [B, N, K], box_codes [B, N, 4])`` over all levels.
    """

    def make_conv(units, name, bias_initializer="zeros", predictor=False):
        # A separable conv is built as a shared depthwise layer and a shared 1x1 layer (the same
        # weights and multiply-adds as SeparableConv2D): tfmot cannot split a *shared*
        # SeparableConv2D for quantization, but it quantizes these two layers directly.
        # Init: convs followed by BN are He-normal in the separable head (two N(0, 0.01) factors
        # give activations far below BN's epsilon, and the head would start dead); the last conv
        # of a predictor is N(0, 0.01), so the class logits start at the prior bias.
        if separable:
            depthwise = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                                     depthwise_initializer=depthwise_he_normal(), name=f"{name}_dw")
            pointwise = keras.layers.Conv2D(units, 1, kernel_initializer=head_initializer() if predictor else "he_normal",
                                            bias_initializer=bias_initializer, name=name)
            return lambda x: pointwise(depthwise(x))
        return keras.layers.Conv2D(units, 3, padding="same", kernel_initializer=head_initializer(),
                                   bias_initializer=bias_initializer, name=name)

    outputs = {}
    for subnet, units, bias in ((CLASS_OUTPUT, num_classes, keras.initializers.Constant(prior_bias(prior_probability))),
                                (BOX_OUTPUT, 4, "zeros")):
        def make_convs(suffix=""):
            return ([make_conv(filters, f"{subnet}_net_conv{i}{suffix}") for i in range(num_convs)],
                    make_conv(num_anchors * units, f"{subnet}_predict{suffix}", bias, predictor=True))

        shared = make_convs() if share_convs else None  # unrolled heads make their own per level
        maps = []
        for level in sorted(features):
            x = features[level]
            convs, predictor = shared if share_convs else make_convs(f"_p{level}")
            for i, conv in enumerate(convs):
                x = ops.norm(conv(x), name=f"{subnet}_net_conv{i}_bn_p{level}")
                x = ops.act(x, name=f"{subnet}_net_conv{i}_act_p{level}")
            maps.append(predictor(x))
        outputs[subnet] = flatten_predictions(maps, units, subnet)
    return outputs[CLASS_OUTPUT], outputs[BOX_OUTPUT]


def classification_head(features: dict, num_classes: int, dropout: float = 0.0):
    """Sec. 4.2: P3..P7 nearest-upsampled to P3, averaged, global-average-pooled, linear."""
    low = min(features)
    size = int(features[low].shape[1])
    resized = [features[low]] + [upsample_to(features[level], level - low, size, name=f"cls_up_p{level}")
                                 for level in sorted(features) if level != low]
    x = keras.layers.Average(name="cls_average")(resized) if len(resized) > 1 else resized[0]
    x = keras.layers.GlobalAveragePooling2D(name="cls_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="cls_dropout")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)
