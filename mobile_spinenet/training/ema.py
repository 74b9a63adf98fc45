"""Exponential moving average of the trainable weights (as in timm, YOLOv5 and the TF Object
Detection API): after every step ``shadow = d * shadow + (1 - d) * weight`` with a decay that
ramps up, ``d = min(decay, (1 + t) / (10 + t))``, so early shadows follow the weights closely.

Validation and the final weights use the shadows (:meth:`WeightAverage.swapped`); the shadows
are part of the checkpoint, so a resumed run averages exactly as an uninterrupted one. BN
statistics are not averaged: precise BN re-estimates them for the averaged weights."""
from __future__ import annotations

import contextlib

from mobile_spinenet.backend import tf


class WeightAverage(tf.Module):
    """Shadow copies of ``variables``; create under the training strategy's scope."""

    def __init__(self, variables, decay: float, fused: bool = True):
        super().__init__(name="weight_average")
        if not 0 < decay < 1:
            raise ValueError(f"config field ema_decay must be in (0, 1), got {decay!r}")
        self.decay, self.fused = float(decay), fused
        self.live = list(variables)
        self.shadows = [tf.Variable(v.read_value(), trainable=False, name=v.name.split(":")[0] + "/ema")
                        for v in self.live]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")
        self._strategy = tf.distribute.get_strategy()  # the scope's: update() may run outside it

    def update(self) -> None:
        """One averaging step (call after the optimizer step, in cross-replica context):
        ``shadow -= (1 - d) * (shadow - weight)``, one fused op per variable unless ``fused`` is
        false (a CPU step spends more on small ops than on their arithmetic, docs/training.md)."""
        t = tf.cast(self.updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
        rate = 1.0 - decay

        def blend(shadow, live):
            tf.raw_ops.ResourceApplyGradientDescent(var=shadow.handle, alpha=tf.cast(rate, shadow.dtype),
                                                    delta=shadow.read_value() - tf.cast(live, shadow.dtype))

        for shadow, live in zip(self.shadows, self.live):
            if self.fused:
                self._strategy.extended.update(shadow, blend, args=(live,), group=False)
            else:  # the same update as four small ops
                shadow.assign(decay * shadow + rate * tf.cast(live, shadow.dtype))
        self.updates.assign_add(1)

    def _swap(self) -> None:
        for shadow, live in zip(self.shadows, self.live):
            kept = tf.identity(live.read_value())
            live.assign(shadow.read_value())
            shadow.assign(kept)

    def adopt(self) -> None:
        """Put the averaged weights into the model for good (the end of training)."""
        for shadow, live in zip(self.shadows, self.live):
            live.assign(shadow.read_value())

    @contextlib.contextmanager
    def swapped(self):
        """The averaged weights in the model for the block's duration (swapped back after)."""
        self._swap()
        try:
            yield
        finally:
            self._swap()
