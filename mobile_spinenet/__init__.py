"""mobile-spinenet: SpineNet detectors for phones and servers from one builder."""
import os

# Must be set before TensorFlow is imported anywhere (tfmot supports Keras 2 only).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
