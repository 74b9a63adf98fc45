"""MobileNetV3 Small/Large backbones (Howard et al., ICCV 2019) from the kit's MBConv block.

Built here rather than taken from ``keras.applications`` because that version applies
raw TF ops to Keras tensors, which quantization-aware training cannot annotate.
"""
from __future__ import annotations

from dataclasses import dataclass

from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops, mbconv_block
from mobile_spinenet.specs import make_divisible

RE, HS = "relu", "hard_swish"


@dataclass(frozen=True)
class V3Block:
    kernel: int
    expand: int
    out: int
    se: bool
    activation: str
    stride: int


def _table(rows):
    return tuple(V3Block(*row) for row in rows)


# Table 1 and Table 2 of the MobileNetV3 paper.
LARGE = _table([
    (3, 16, 16, False, RE, 1), (3, 64, 24, False, RE, 2), (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2), (5, 120, 40, True, RE, 1), (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2), (3, 200, 80, False, HS, 1), (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1), (3, 480, 112, True, HS, 1), (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2), (5, 960, 160, True, HS, 1), (5, 960, 160, True, HS, 1),
])
SMALL = _table([
    (3, 16, 16, True, RE, 2), (3, 72, 24, False, RE, 2), (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2), (5, 240, 40, True, HS, 1), (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1), (5, 144, 48, True, HS, 1), (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1), (5, 576, 96, True, HS, 1),
])
LAST_CONV = {"large": 960, "small": 576}
HEAD_CONV = {"large": 1280, "small": 1024}  # the classifier's 1x1 conv after pooling (no BN)
TABLES = {"large": LARGE, "small": SMALL}


def mobilenet_v3(inputs, ops: Ops, size: str = "large", detection: bool = True):
    """Return ``(c4, c5)``: the expansion output of the first stride-32 block (stride 16)
    and the last 1x1 conv (stride 32), the two taps SSDLite predicts from.

    With ``detection`` the blocks from the last stride-2 block on have their widths
    halved, as the MobileNetV3 paper does for SSDLite (Sec. 6.2).
    """
    table = TABLES[size]
    tail_start = max(i for i, block in enumerate(table) if block.stride == 2)
    divider = 2 if detection else 1
    x = ops.with_activation(HS).conv_bn(inputs, 16, 3, strides=2, name="v3_stem")
    c4 = None
    for i, block in enumerate(table):
        # Expansions are relative to the input width, so only outputs are halved.
        expand = block.expand if i <= tail_start else block.expand // divider
        out = block.out if i < tail_start else block.out // divider
        x, expansion = mbconv_block(x, ops.with_activation(block.activation), out, expand, block.kernel,
                                    block.stride, se_filters=make_divisible(expand / 4) if block.se else 0,
                                    se_gate="hard_sigmoid", name=f"v3_block{i}", return_expansion=True)
        if i == tail_start:
            c4 = expansion
    c5 = ops.with_activation(HS).conv_bn(x, LAST_CONV[size] // divider, 1, name="v3_last_conv")
    return c4, c5


def mobilenet_v3_classifier(inputs, ops: Ops, size: str, num_classes: int, dropout: float = 0.2):
    """Logits ``[B, num_classes]`` of the MobileNetV3 classifier (Sec. 5.1 of its paper): the full-width
    backbone, global average pooling, a 1x1 conv with hard-swish and no BN, dropout, a linear layer."""
    _, c5 = mobilenet_v3(inputs, ops, size, detection=False)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="v3_pool")(c5)
    x = ops.act(keras.layers.Conv2D(HEAD_CONV[size], 1, use_bias=True, name="v3_head_conv")(x), name="v3_head_act",
                activation=HS)
    x = keras.layers.Flatten(name="v3_flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="v3_dropout")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)
