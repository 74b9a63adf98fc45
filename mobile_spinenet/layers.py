"""Custom Keras layers the blocks need: stochastic depth, DropBlock, hard activations.

They are Keras layers (never Lambda or raw TF ops on Keras tensors) so that
models stay serializable and tensorflow-model-optimization can annotate them.
"""
from mobile_spinenet.backend import keras, tf

_register = keras.utils.register_keras_serializable(package="mobile_spinenet")


@_register
class StochasticDepth(keras.layers.Layer):
    """Drops the residual branch of a whole sample with probability ``rate`` while training."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = [tf.shape(inputs)[0]] + [1] * (len(inputs.shape) - 1)
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=inputs.dtype))
        return inputs / keep * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@_register
class DropBlock(keras.layers.Layer):
    """DropBlock (Ghiasi et al., 2018): drops contiguous ``block_size`` squares while training."""

    def __init__(self, keep_prob: float = 0.9, block_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.keep_prob = float(keep_prob)
        self.block_size = int(block_size)

    def call(self, inputs, training=None):
        if not training or self.keep_prob >= 1.0:
            return inputs
        height, width = inputs.shape[1], inputs.shape[2]
        block = min(self.block_size, height, width)
        # Seed rate so that the expected dropped area is (1 - keep_prob).
        gamma = ((1.0 - self.keep_prob) * height * width / block ** 2
                 / ((height - block + 1) * (width - block + 1)))
        valid = tf.pad(tf.ones([height - block + 1, width - block + 1], inputs.dtype),
                       [[block // 2, (block - 1) // 2], [block // 2, (block - 1) // 2]])
        valid = tf.reshape(valid, [1, height, width, 1])
        seeds = tf.cast(tf.random.uniform(tf.shape(inputs), dtype=inputs.dtype) < gamma, inputs.dtype)
        seeds *= valid
        dropped = tf.nn.max_pool2d(seeds, block, strides=1, padding="SAME")
        keep_mask = 1.0 - dropped
        scale = tf.cast(tf.size(keep_mask), inputs.dtype) / (tf.reduce_sum(keep_mask) + 1e-6)
        return inputs * keep_mask * scale

    def get_config(self):
        return {**super().get_config(), "keep_prob": self.keep_prob, "block_size": self.block_size}


def _hard_sigmoid(inputs, quantize_inner: bool):
    """relu6(x + 3) / 6; with ``quantize_inner`` relu6(x + 3) is fake-quantized on [0, 6]."""
    gate = tf.nn.relu6(inputs + 3.0)
    if quantize_inner:
        gate = tf.quantization.fake_quant_with_min_max_args(gate, 0.0, 6.0, num_bits=8)
    return gate * (1.0 / 6.0)


class HardActivation(keras.layers.Layer):
    """MobileNetV3's hard activations; ``quantize_inner`` is set on quantization-aware copies."""

    def __init__(self, quantize_inner: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.quantize_inner = bool(quantize_inner)

    def get_config(self):
        return {**super().get_config(), "quantize_inner": self.quantize_inner}


@_register
class HardSigmoid(HardActivation):
    """relu6(x + 3) / 6: MobileNetV3's gate. (Scaled by 1/6, not 1.6667.)

    ``quantize_inner`` fake-quantizes relu6(x + 3) on its exact range [0, 6], so the converter
    makes its ADD and MUL int8 too, not just the layer's output."""

    def call(self, inputs):
        return _hard_sigmoid(inputs, self.quantize_inner)


@_register
class HardSwish(HardActivation):
    """x * relu6(x + 3) / 6. Float, it converts to TFLite's HARD_SWISH.

    ``quantize_inner`` (quantization-aware copies) also fake-quantizes the gate on [0, 1], so an
    int8 file computes it as ADD (relu6 fused), MUL, MUL instead: XNNPACK (LiteRT 2.3) does not take
    int8 HARD_SWISH, and every one left to the builtin kernels made MobileNetV3-SSDLite ~4x slower."""

    def call(self, inputs):
        gate = _hard_sigmoid(inputs, self.quantize_inner)
        if self.quantize_inner:
            gate = tf.quantization.fake_quant_with_min_max_args(gate, 0.0, 1.0, num_bits=8)
        return inputs * gate


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (StochasticDepth, DropBlock, HardSigmoid, HardSwish)}
