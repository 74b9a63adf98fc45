"""Float TFLite conversion from a static-shape concrete function."""
from __future__ import annotations

import os
import tempfile

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.counting import inference_function


def to_tflite_fp32(model: keras.Model) -> bytes:
    """Convert ``model`` to a float TFLite flatbuffer with a static ``[1, H, W, 3]`` input
    (a dynamic batch adds SHAPE/STRIDED_SLICE ops that keep XNNPACK from taking the graph)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inference_function(model)], model)
    return converter.convert()


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
