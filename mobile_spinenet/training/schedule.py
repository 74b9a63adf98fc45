"""Learning rate: linear warm-up from 0, then step decay (x0.1, x0.01, x0.001 at given
fractions of training, Sec. 5.1) or cosine decay to 0."""
from __future__ import annotations

import math

from mobile_spinenet.backend import keras, tf


@keras.utils.register_keras_serializable("mobile_spinenet")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up for ``warmup_steps``, then ``"step"`` or ``"cosine"`` decay over ``total_steps``."""

    def __init__(self, base_lr, total_steps, warmup_steps=0, kind="step",
                 decay_at=(0.84, 0.92, 0.96), decay_factors=(0.1, 0.01, 0.001)):
        self.base_lr, self.total_steps, self.warmup_steps = float(base_lr), int(total_steps), int(warmup_steps)
        self.kind, self.decay_at, self.decay_factors = kind, tuple(decay_at), tuple(decay_factors)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            decayed = 0.5 * self.base_lr * (1 + tf.cos(math.pi * progress))
        else:
            decayed = tf.constant(self.base_lr)
            for fraction, factor in zip(self.decay_at, self.decay_factors):
                decayed = tf.where(step >= fraction * self.total_steps, self.base_lr * factor, decayed)
        if self.warmup_steps > 0:
            warm = self.base_lr * step / self.warmup_steps
            return tf.where(step < self.warmup_steps, warm, decayed)
        return decayed

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "kind": self.kind, "decay_at": self.decay_at, "decay_factors": self.decay_factors}
