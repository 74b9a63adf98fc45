"""The number format a training step computes in (``--precision``; config field ``precision``).

``float32`` everywhere; ``mixed_bfloat16`` or ``mixed_float16``: Keras's mixed policies (layers
compute in 16 bits, variables, batch-norm statistics, losses and the optimizer stay float32;
float16 with dynamic loss scaling); ``auto``: float16 on a GPU, bfloat16 on a TPU or a CPU that
computes bfloat16 natively (AVX-512 BF16 or AMX), float32 elsewhere. A run's weights, its exports
(float32 and int8 TFLite) and everything that loads it are float32 whatever it trained in."""
from __future__ import annotations

import contextlib
from typing import Callable

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r} "
                         f"(config field precision)")
    return precision


def resolve_precision(precision: str, strategy: str, has_gpu: Callable[[], bool],
                      native_bfloat16: Callable[[], bool]) -> str:
    """The Keras policy name a run trains with. A 16-bit format the machine cannot compute is
    refused in one line: float16 without a GPU, bfloat16 on a CPU without AVX-512 BF16 or AMX
    (TensorFlow emulates both there, slowly and, for bfloat16, with gradients far from float32's)."""
    check_precision(precision)
    if precision == "auto":
        if has_gpu():
            return "mixed_float16"
        return "mixed_bfloat16" if strategy == "tpu" or native_bfloat16() else "float32"
    if precision == "mixed_float16" and strategy != "tpu" and not has_gpu():
        raise ValueError("--precision mixed_float16 needs a GPU and this machine has none (a CPU emulates "
                         "float16, far slower than float32); use --precision auto or mixed_bfloat16")
    if precision == "mixed_float16" and strategy == "tpu":
        raise ValueError("--precision mixed_float16 is not for TPUs, which compute bfloat16: use mixed_bfloat16 "
                         "or auto")
    if precision == "mixed_bfloat16" and strategy != "tpu" and not has_gpu() and not native_bfloat16():
        # TensorFlow emulates bfloat16 on such CPUs (Eigen; oneDNN takes it only with AVX-512): on an
        # AVX2 host a SpineNet-49xxs step's kernel gradients came out a median 100% off float32's
        # (the forward pass and losses within 2%), sums accumulated in 16 bits (docs/training.md)
        raise ValueError("--precision mixed_bfloat16 needs a CPU with AVX-512 BF16 or AMX (or a TPU); this CPU "
                         "emulates bfloat16, with gradients far from float32's: use --precision auto (float32 here)")
    return precision


def machine_precision(precision: str, strategy: str) -> str:
    """:func:`resolve_precision` for this machine."""
    from mobile_spinenet.host import has_native_bfloat16

    def has_gpu() -> bool:
        from mobile_spinenet.backend import tf
        return bool(tf.config.list_physical_devices("GPU"))

    return resolve_precision(precision, strategy, has_gpu, has_native_bfloat16)


@contextlib.contextmanager
def compute_policy(policy: str):
    """Keras's global dtype policy set to ``policy`` while the run's model is built (its layers
    keep it), and the previous one back afterwards: a model built later in the same process (an
    evaluation, an export) is float32."""
    from mobile_spinenet.backend import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
