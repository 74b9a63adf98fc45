"""Cross-scale resampling between SpineNet blocks (Sec. 3.2 / Fig. 4, App. A)."""
from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops


def upsample_to(x, levels: int, target_size: int, name: str):
    """Nearest upsampling by ``2**levels``; crops the surplus row/column that odd sizes
    leave (e.g. 2 -> 8 -> 7 at 224 px), which never happens at multiples of 128."""
    x = keras.layers.UpSampling2D(2 ** levels, interpolation="nearest", name=name)(x)
    surplus = int(x.shape[1]) - target_size
    if surplus > 0:
        x = keras.layers.Cropping2D(((0, surplus), (0, surplus)), name=f"{name}_crop")(x)
    return x


def resample_bottleneck(x, ops: Ops, parent_filters: int, parent_level: int, target_level: int,
                        target_channels: int, target_size: int, alpha: float, name: str):
    """Bottleneck family: 1x1 to ``alpha * parent_filters``; nearest upsampling, or a
    stride-2 3x3 conv then stride-2 max-pooling; 1x1 to ``target_channels``; BN after each conv."""
    x = ops.conv_bn(x, int(parent_filters * alpha), 1, name=f"{name}_alpha")
    if parent_level < target_level:
        x = ops.conv_bn(x, x.shape[-1], 3, strides=2, name=f"{name}_down")
        for step in range(target_level - parent_level - 1):
            x = keras.layers.MaxPool2D(3, strides=2, padding="same", name=f"{name}_pool{step}")(x)
    elif parent_level > target_level:
        x = upsample_to(x, parent_level - target_level, target_size, name=f"{name}_up")
    return ops.conv_bn(x, target_channels, 1, name=f"{name}_match", activate=False)


def resample_mobile(x, ops: Ops, parent_level: int, target_level: int, target_channels: int,
                    target_size: int, name: str):
    """MBConv family (App. A): no alpha 1x1; each halving is a stride-2 3x3 depthwise conv
    (BN, activation), upsampling is nearest; then a 1x1 conv + BN, i.e. a separable conv."""
    for step in range(target_level - parent_level):
        x = ops.depthwise_bn(x, 3, strides=2, name=f"{name}_down{step}")
    if parent_level > target_level:
        x = upsample_to(x, parent_level - target_level, target_size, name=f"{name}_up")
    return ops.conv_bn(x, target_channels, 1, name=f"{name}_match", activate=False)
