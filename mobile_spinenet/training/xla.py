"""What the XLA train step needs beyond ``jit_compile=True``.

XLA's CPU backend has no kernel for ``ResizeNearestNeighborGrad``, the gradient of the nearest
upsampling between SpineNet blocks (and in FPN top-down paths). For an integer factor ``k``
(the only kind the kit's models use) that gradient is a sum over each ``k x k`` block of the
output gradient: a reshape and a sum, which XLA compiles. :func:`xla_gradients` makes the
tape use that form; the model graph and its TFLite export are
unchanged (the forward op stays ``RESIZE_NEAREST_NEIGHBOR``)."""
from __future__ import annotations

import contextlib
import threading

from mobile_spinenet.backend import tf

_UPSAMPLE_OP = "ResizeNearestNeighbor"
_SWAP_LOCK = threading.Lock()


def nearest_upsample_block_sum(op, grad):
    """Gradient of an integer-factor nearest upsampling: each input pixel receives the sum of
    the ``k_h x k_w`` output pixels it was copied to."""
    _, in_h, in_w, channels = op.inputs[0].shape
    _, out_h, out_w, _ = grad.shape
    if None in (in_h, in_w, out_h, out_w, channels) or out_h % in_h or out_w % in_w:
        raise ValueError(f"XLA training needs static, integer-factor nearest upsampling; got "
                         f"{in_h}x{in_w} -> {out_h}x{out_w}")
    k_h, k_w = out_h // in_h, out_w // in_w
    blocks = tf.reshape(grad, [-1, in_h, k_h, in_w, k_w, channels])
    return tf.reduce_sum(blocks, axis=[2, 4]), None


@contextlib.contextmanager
def xla_gradients():
    """Gradients taken inside the block use XLA-compilable forms (wrap ``tape.gradient``).

    TF2 tapes look gradient functions up by op type in TensorFlow's gradient registry (there is
    no public per-call override; ``gradient_override_map`` is graph-mode only), so the entry is
    swapped for the block's duration and restored after. Checked against TF 2.21 by
    tests/test_training_speed.py."""
    from tensorflow.python.framework import ops  # the registry tf.GradientTape reads

    table = ops._gradient_registry._registry  # noqa: SLF001 (see the docstring)
    with _SWAP_LOCK:
        original = table[_UPSAMPLE_OP]
        table[_UPSAMPLE_OP] = {**original, "type": nearest_upsample_block_sum}
        try:
            yield
        finally:
            table[_UPSAMPLE_OP] = original
