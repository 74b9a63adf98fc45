"""The optimizer a recipe names: ``sgd`` (the paper's: momentum, L2 weight decay in the loss) or
``adamw`` (decoupled weight decay on convolution and dense kernels only, as the L2 term of SGD)."""
from __future__ import annotations

from mobile_spinenet.backend import keras
from mobile_spinenet.training.config import OPTIMIZERS


def decayed_variables(model) -> list:
    """The variables weight decay applies to: kernels, not BN parameters or biases."""
    return [v for v in model.trainable_variables if "kernel" in v.name]


def l2_loss_coefficient(config) -> float:
    """The L2 term's weight in the loss: SGD's weight decay; 0 for AdamW, which decays the same
    kernels itself (decoupled)."""
    return 0.0 if config.optimizer == "adamw" else config.weight_decay


def make_optimizer(config, learning_rate, model):
    """``keras`` optimizer of ``config.optimizer`` with schedule ``learning_rate``."""
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum, jit_compile=False,
                                    global_clipnorm=config.clip_grad_norm)
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay,
                                           beta_1=config.momentum, beta_2=0.999, epsilon=1e-7, jit_compile=False,
                                           global_clipnorm=config.clip_grad_norm)
        kept = {id(v) for v in decayed_variables(model)}
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in kept])
        return optimizer
    raise ValueError(f"config field optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
