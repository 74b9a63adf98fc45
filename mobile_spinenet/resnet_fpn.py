"""ResNet-50-FPN, the paper's scale-decreased baseline (Table 2), from the shared blocks."""
from __future__ import annotations

from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops, bottleneck_block

RESNET50_STAGES = ((2, 64, 3), (3, 128, 4), (4, 256, 6), (5, 512, 3))


def resnet50(inputs, ops: Ops) -> dict[int, object]:
    """ResNet-50 (stride in the 3x3 conv); returns C2..C5 by level."""
    x = ops.conv_bn(inputs, 64, 7, strides=2, name="resnet_stem")
    x = keras.layers.MaxPool2D(3, strides=2, padding="same", name="resnet_stem_pool")(x)
    features = {}
    for level, filters, count in RESNET50_STAGES:
        for i in range(count):
            stride = 2 if i == 0 and level > 2 else 1
            x = bottleneck_block(x, ops, filters, stride, name=f"resnet_c{level}_b{i}")
        features[level] = x
    return features


def fpn(features: dict, ops: Ops, filters: int = 256, min_level: int = 3, max_level: int = 7):
    """FPN (Lin et al., 2017): 1x1 laterals, nearest top-down path, 3x3 outputs; P6/P7 by
    stride-2 3x3 convs, P7 after a ReLU, as RetinaNet does. BN after each conv."""
    top = max(features)
    laterals = {lvl: ops.conv_bn(features[lvl], filters, 1, name=f"fpn_lateral_p{lvl}", activate=False)
                for lvl in range(min_level, top + 1)}
    for lvl in range(top - 1, min_level - 1, -1):
        up = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_up_p{lvl}")(laterals[lvl + 1])
        laterals[lvl] = keras.layers.Add(name=f"fpn_merge_p{lvl}")([laterals[lvl], up])
    outputs = {lvl: ops.conv_bn(laterals[lvl], filters, 3, name=f"fpn_out_p{lvl}", activate=False)
               for lvl in range(min_level, top + 1)}
    for lvl in range(top + 1, max_level + 1):
        x = outputs[lvl - 1]
        if lvl > top + 1:
            x = ops.act(x, name=f"fpn_relu_p{lvl}", activation="relu")
        outputs[lvl] = ops.conv_bn(x, filters, 3, strides=2, name=f"fpn_out_p{lvl}", activate=False)
    return outputs
