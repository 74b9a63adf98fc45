"""Building blocks shared by every model of the kit.

SpineNet (both families), MobileNetV3-SSDLite and ResNet-50-FPN all take their
convolutions, normalization, activations and blocks from here. Every block is a
function from a Keras tensor to a Keras tensor that adds named Keras layers.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from mobile_spinenet.backend import keras
from mobile_spinenet.layers import DropBlock, HardSigmoid, HardSwish, StochasticDepth

_CUSTOM_ACTIVATIONS = {"hard_swish": HardSwish, "hard_sigmoid": HardSigmoid}
ACTIVATIONS = ("relu", "relu6", "swish", "sigmoid", "hard_swish", "hard_sigmoid")


def depthwise_he_normal():
    """He-normal for depthwise kernels ``[k, k, C, 1]``: Keras counts their fan-in as k*k*C, which
    shrinks the init by sqrt(C); each output only sees k*k inputs, which "fan_out" counts."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal")


@dataclass(frozen=True)
class Ops:
    """How convolutions, normalization and activations are made for one model."""

    activation: str = "relu"
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    sync_bn: bool = False
    dropblock_keep_prob: Optional[float] = None
    dropblock_size: int = 3
    kernel_initializer: str = "he_normal"

    def with_activation(self, activation: str) -> "Ops":
        return replace(self, activation=activation)

    def conv(self, x, filters, kernel_size=1, strides=1, name=None, use_bias=False):
        return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                                   use_bias=use_bias, kernel_initializer=self.kernel_initializer,
                                   name=name)(x)

    def depthwise(self, x, kernel_size=3, strides=1, name=None):
        return keras.layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same",
                                            use_bias=False, depthwise_initializer=depthwise_he_normal(),
                                            name=name)(x)

    def norm(self, x, name=None):
        return keras.layers.BatchNormalization(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                                               synchronized=self.sync_bn, name=name)(x)

    def act(self, x, name=None, activation=None):
        activation = activation or self.activation
        if activation in _CUSTOM_ACTIVATIONS:
            return _CUSTOM_ACTIVATIONS[activation](name=name)(x)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        return keras.layers.Activation(activation, name=name)(x)

    def dropblock(self, x, name=None):
        if self.dropblock_keep_prob is None:
            return x
        return DropBlock(self.dropblock_keep_prob, self.dropblock_size, name=name)(x)

    def depthwise_bn(self, x, kernel_size=3, strides=1, name="dw"):
        """Depthwise conv (no bias), BN, activation."""
        x = self.depthwise(x, kernel_size, strides, name=name)
        return self.act(self.norm(x, name=f"{name}_bn"), name=f"{name}_act")

    def conv_bn(self, x, filters, kernel_size=1, strides=1, name="conv", activate=True):
        """Conv (no bias), BN, optional DropBlock, optional activation."""
        x = self.conv(x, filters, kernel_size, strides, name=f"{name}")
        x = self.norm(x, name=f"{name}_bn")
        x = self.dropblock(x, name=f"{name}_dropblock")
        return self.act(x, name=f"{name}_act") if activate else x


def _residual_add(ops: Ops, shortcut, branch, drop_path: float, name: str, activate=True):
    if drop_path > 0:
        branch = StochasticDepth(drop_path, name=f"{name}_drop_path")(branch)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, branch])
    return ops.act(x, name=f"{name}_out") if activate else x


def bottleneck_block(x, ops: Ops, filters: int, strides=1, drop_path=0.0, name="bottleneck"):
    """ResNet bottleneck: 1x1, 3x3 (strided), 1x1 to 4x ``filters``; projection when shapes change."""
    out_filters = 4 * filters
    shortcut = x
    if x.shape[-1] != out_filters or strides != 1:
        shortcut = ops.conv_bn(x, out_filters, 1, strides, name=f"{name}_proj", activate=False)
    y = ops.conv_bn(x, filters, 1, name=f"{name}_conv1")
    y = ops.conv_bn(y, filters, 3, strides, name=f"{name}_conv2")
    y = ops.conv_bn(y, out_filters, 1, name=f"{name}_conv3", activate=False)
    return _residual_add(ops, shortcut, y, drop_path, name)


def residual_block(x, ops: Ops, filters: int, strides=1, drop_path=0.0, name="residual"):
    """ResNet basic block: two 3x3 convs; projection when shapes change."""
    shortcut = x
    if x.shape[-1] != filters or strides != 1:
        shortcut = ops.conv_bn(x, filters, 1, strides, name=f"{name}_proj", activate=False)
    y = ops.conv_bn(x, filters, 3, strides, name=f"{name}_conv1")
    y = ops.conv_bn(y, filters, 3, name=f"{name}_conv2", activate=False)
    return _residual_add(ops, shortcut, y, drop_path, name)


def squeeze_excite(x, ops: Ops, reduced_filters: int, gate="sigmoid", name="se"):
    """Squeeze-excite: GAP, 1x1 reduce + ReLU, 1x1 expand + gate, channel-wise multiply."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = keras.layers.Conv2D(reduced_filters, 1, use_bias=True, name=f"{name}_reduce")(s)
    s = ops.act(s, name=f"{name}_reduce_act", activation="relu")
    s = keras.layers.Conv2D(channels, 1, use_bias=True, name=f"{name}_expand")(s)
    s = ops.act(s, name=f"{name}_gate", activation=gate)
    return keras.layers.Multiply(name=f"{name}_excite")([x, s])


def mbconv_block(x, ops: Ops, out_filters: int, expand_filters: int, kernel_size=3, strides=1,
                 se_filters=0, se_gate="sigmoid", drop_path=0.0, name="mbconv", return_expansion=False):
    """Inverted bottleneck (MobileNetV2/V3, EfficientNet's MBConv).

    1x1 expansion (skipped when ``expand_filters`` equals the input width), depthwise
    conv, optional squeeze-excite with ``se_filters`` reduce width, linear 1x1
    projection, and a residual add when input and output shapes agree. With
    ``return_expansion`` it returns ``(output, expansion_output)`` (SSDLite's C4 tap).
    """
    in_filters = x.shape[-1]
    y = x
    if expand_filters != in_filters:
        y = ops.conv_bn(y, expand_filters, 1, name=f"{name}_expand")
    expansion = y
    y = ops.depthwise_bn(y, kernel_size, strides, name=f"{name}_dw")
    if se_filters:
        y = squeeze_excite(y, ops, se_filters, se_gate, name=f"{name}_se")
    y = ops.conv_bn(y, out_filters, 1, name=f"{name}_project", activate=False)
    if strides == 1 and in_filters == out_filters:
        y = _residual_add(ops, x, y, drop_path, name, activate=False)
    return (y, expansion) if return_expansion else y


