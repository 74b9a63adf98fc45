"""One place that imports TensorFlow with the legacy (tf-keras 2) Keras.

tensorflow-model-optimization only understands Keras 2 models, so every module
of the kit takes ``tf`` and ``keras`` from here, never from ``tensorflow.keras``.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
