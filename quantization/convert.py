"""Float TFLite conversion from a static-shape concrete function."""
from __future__ import annotations

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.counting import inference_function
from mobile_spinenet.io_utils import write_atomically  # noqa: F401  (re-exported)


def to_tflite_fp32(model: keras.Model) -> bytes:
    """Convert ``model`` to a float TFLite flatbuffer with a static ``[1, H, W, 3]`` input
    (a dynamic batch adds SHAPE/STRIDED_SLICE ops that keep XNNPACK from taking the graph)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inference_function(model)], model)
    return converter.convert()
