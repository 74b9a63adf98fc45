"""Float TFLite conversion of any model of the kit (see :mod:`export` for the options)."""
from __future__ import annotations

from mobile_spinenet.backend import keras
from mobile_spinenet.io_utils import write_atomically  # noqa: F401  (re-exported)
from mobile_spinenet.quantization.export import ExportOptions, convert


def to_tflite_fp32(model: keras.Model) -> bytes:
    """``model`` as a float TFLite flatbuffer with its own outputs and a static ``[1, H, W, 3]``
    input (a dynamic batch adds SHAPE/STRIDED_SLICE ops that keep XNNPACK from taking the graph)."""
    return convert(model, None, ExportOptions("fp32", nms="none"))
