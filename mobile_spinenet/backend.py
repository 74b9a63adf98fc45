"""One place that imports TensorFlow with the legacy (tf-keras 2) Keras.

tensorflow-model-optimization only understands Keras 2 models, so every module
of the kit takes ``tf`` and ``keras`` from here, never from ``tensorflow.keras``.

On a machine without an NVIDIA driver, TensorFlow's CUDA probe (cudart stub, cuInit, CPU
feature notes) writes to the process's stderr from C++, past any log level. While TensorFlow
imports and lists its devices, stderr is captured and replayed without those known lines, so
real errors still show. ``MOBILE_SPINENET_SHOW_CUDA_PROBE=1`` shows everything.

oneDNN's CPU kernels are turned on (``TF_ENABLE_ONEDNN_OPTS=1``) unless the environment says
otherwise. TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; on an
AVX2 CPU (the kit's test machine: AMD Zen 3) it runs Eigen's kernels, and a SpineNet-49xxs
training step took 1.35-1.5x as long (docs/training.md). The numbers differ only by float rounding
(``tests/test_training_speed.py``).
"""
import os
import re
import sys
import tempfile
from contextlib import contextmanager

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # must be set before TensorFlow is imported

IMPORT_NOISE_LINES = re.compile(
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags")


def no_gpu_driver() -> bool:
    """True where no NVIDIA driver is loaded: the CUDA probe can only fail, so its lines are noise."""
    return not os.path.exists("/proc/driver/nvidia/version") and os.environ.get("MOBILE_SPINENET_SHOW_CUDA_PROBE") != "1"


@contextmanager
def stderr_without(pattern: "re.Pattern"):
    """Capture file descriptor 2 (C++ writes there too) and replay every line not matching ``pattern``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not pattern.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


if no_gpu_driver():
    with stderr_without(IMPORT_NOISE_LINES):
        import tensorflow as tf  # noqa: E402
        tf.config.list_physical_devices("GPU")  # the cuInit probe runs here, inside the filter
else:
    import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
