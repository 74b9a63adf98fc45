"""The second stage's heads, as Keras models over pooled RoI features ``[N, S, S, C]`` (all RoIs of
a batch stacked), so they can be counted and applied to any number of RoIs."""
from __future__ import annotations

from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops, depthwise_he_normal

ROI_CLASSES = "roi_classes"
ROI_BOXES = "roi_boxes"


def _conv(x, ops: Ops, filters: int, separable: bool, name: str):
    if separable:
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, depthwise_initializer=depthwise_he_normal(),
                                         name=f"{name}_dw")(x)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=name)(x)
    else:
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                                name=name)(x)
    return ops.act(ops.norm(x, name=f"{name}_bn"), name=f"{name}_act")


def box_head(ops: Ops, roi_size: int, channels: int, num_classes: int, filters: int, num_convs: int = 4,
             fc_dims: int = 1024, separable: bool = False) -> keras.Model:
    """Fast R-CNN "4conv1fc" head: ``num_convs`` 3x3 convs with BN, one fully connected layer with
    BN, then ``num_classes + 1`` logits (0 is background) and class-specific box codes
    ``[N, num_classes * 4]``."""
    inputs = keras.Input((roi_size, roi_size, channels), name="box_roi_features")
    x = inputs
    for i in range(num_convs):
        x = _conv(x, ops, filters, separable, f"box_head_conv{i}")
    x = keras.layers.Flatten(name="box_head_flatten")(x)
    x = keras.layers.Dense(fc_dims, use_bias=False, name="box_head_fc")(x)
    x = ops.act(ops.norm(x, name="box_head_fc_bn"), name="box_head_fc_act")
    classes = keras.layers.Dense(num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                 name=ROI_CLASSES)(x)
    boxes = keras.layers.Dense(num_classes * 4, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                               name=ROI_BOXES)(x)
    return keras.Model(inputs, {ROI_CLASSES: classes, ROI_BOXES: boxes}, name="box_head")


def mask_head(ops: Ops, roi_size: int, channels: int, num_classes: int, filters: int, num_convs: int = 4,
              separable: bool = False) -> keras.Model:
    """Mask R-CNN's mask head: ``num_convs`` 3x3 convs with BN, a 2x2 stride-2 transposed conv, and a
    1x1 conv to one mask logit map per class: ``[N, 2 * roi_size, 2 * roi_size, num_classes]``."""
    inputs = keras.Input((roi_size, roi_size, channels), name="mask_roi_features")
    x = inputs
    for i in range(num_convs):
        x = _conv(x, ops, filters, separable, f"mask_head_conv{i}")
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, use_bias=False, kernel_initializer="he_normal",
                                     name="mask_head_upsample")(x)
    x = ops.act(ops.norm(x, name="mask_head_upsample_bn"), name="mask_head_upsample_act")
    logits = keras.layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                                 name="mask_logits")(x)
    return keras.Model(inputs, logits, name="mask_head")
