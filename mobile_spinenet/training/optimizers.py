"""The optimizer a recipe names: ``sgd`` (the paper's: momentum, L2 weight decay in the loss) or
``adamw`` (decoupled weight decay on convolution and dense kernels only, as the L2 term of SGD).

Both are the ``keras`` optimizers with their dense update done by TensorFlow's fused kernels
(``ResourceApplyKerasMomentum``, ``ResourceApplyAdam``): one op per variable instead of the 8-25
small ops Keras builds for each, with the step's scalars (learning rate, bias corrections)
computed once per step instead of once per variable. The kernels compute Keras's formulas
(tests/test_optimizers.py); on a CPU the small ops cost more than the arithmetic
(docs/training.md). Checkpoints are the same variables as Keras's, so either resumes the other;
``fused_updates: false`` in a config builds Keras's own."""
from __future__ import annotations

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.training.config import OPTIMIZERS


def decayed_variables(model) -> list:
    """The variables weight decay applies to: kernels, not BN parameters or biases."""
    return [v for v in model.trainable_variables if "kernel" in v.name]


def l2_loss_coefficient(config) -> float:
    """The L2 term's weight in the loss: SGD's weight decay; 0 for AdamW, which decays the same
    kernels itself (decoupled)."""
    return 0.0 if config.optimizer == "adamw" else config.weight_decay


class _StepScalars:
    """Computes an optimizer's per-step scalars once, before its per-variable updates."""

    def _step_scalars(self) -> dict:
        raise NotImplementedError

    def _distributed_apply_gradients_fn(self, distribution, grads_and_vars, **kwargs):
        self._scalars = self._step_scalars()
        try:
            return super()._distributed_apply_gradients_fn(distribution, grads_and_vars, **kwargs)
        finally:
            self._scalars = None

    def _scalar(self, name, variable):
        value = self._scalars[name] if getattr(self, "_scalars", None) else self._step_scalars()[name]
        return tf.cast(value, variable.dtype)


class FusedSGD(_StepScalars, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` (momentum, optionally Nesterov) with a fused dense update."""

    def _step_scalars(self) -> dict:
        return {"lr": tf.identity(self.learning_rate), "momentum": tf.convert_to_tensor(self.momentum)}

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):  # (Keras builds a momentum slot for every variable)
            return super().update_step(gradient, variable)
        momentum = self.momentums[self._index_dict[self._var_key(variable)]]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.handle, lr=self._scalar("lr", variable), grad=gradient,
            momentum=self._scalar("momentum", variable), use_nesterov=self.nesterov)


class FusedAdamW(_StepScalars, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with a fused dense update and a one-op weight decay."""

    def _step_scalars(self) -> dict:
        step = tf.cast(self.iterations + 1, tf.float32)
        return {"lr": tf.identity(self.learning_rate),
                "beta_1_power": tf.pow(tf.cast(self.beta_1, tf.float32), step),
                "beta_2_power": tf.pow(tf.cast(self.beta_2, tf.float32), step)}

    def _apply_weight_decay(self, variables):
        # Keras: variable -= variable * weight_decay * lr on every variable not excluded; here one
        # op per variable with the rate computed once.
        if self.weight_decay is None:
            return

        def decay_all(distribution, variables, **kwargs):
            rate = self.learning_rate * tf.cast(self.weight_decay, tf.float32)

            def decay(variable):
                tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=tf.cast(rate, variable.dtype),
                                                        delta=variable.read_value())

            for variable in variables:
                if self._use_weight_decay(variable):
                    distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(decay_all, self._distribution_strategy, variables)

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable)
        key = self._index_dict[self._var_key(variable)]
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[key].handle, v=self._velocities[key].handle,
            beta1_power=self._scalar("beta_1_power", variable), beta2_power=self._scalar("beta_2_power", variable),
            lr=self._scalar("lr", variable), beta1=tf.cast(self.beta_1, variable.dtype),
            beta2=tf.cast(self.beta_2, variable.dtype), epsilon=tf.cast(self.epsilon, variable.dtype),
            grad=gradient)


def make_optimizer(config, learning_rate, model):
    """``keras`` optimizer of ``config.optimizer`` with schedule ``learning_rate`` (fused unless
    ``config.fused_updates`` is false)."""
    fused = config.fused_updates
    if config.optimizer == "sgd":
        return (FusedSGD if fused else keras.optimizers.SGD)(
            learning_rate, momentum=config.momentum, jit_compile=False, global_clipnorm=config.clip_grad_norm)
    if config.optimizer == "adamw":
        optimizer = (FusedAdamW if fused else keras.optimizers.AdamW)(
            learning_rate, weight_decay=config.weight_decay, beta_1=config.momentum, beta_2=0.999, epsilon=1e-7,
            jit_compile=False, global_clipnorm=config.clip_grad_norm)
        kept = {id(v) for v in decayed_variables(model)}
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in kept])
        return optimizer
    raise ValueError(f"config field optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
