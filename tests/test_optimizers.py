"""The fused optimizers compute Keras's SGD and AdamW updates, with far fewer ops per step, and the
fused weight average works on mirrored variables."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.training.config import load_config
from mobile_spinenet.training.optimizers import FusedAdamW, FusedSGD, make_optimizer
from mobile_spinenet.training.schedule import WarmupDecay


def _small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Activation("swish")(x))
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _keras_optimizer(config, schedule, model):
    """Keras's own optimizer for the same recipe (what make_optimizer built before it fused the updates)."""
    return make_optimizer(dataclasses.replace(config, fused_updates=False), schedule, model)


def _train(config, factory, steps=6):
    """Weights and optimizer slots after ``steps`` steps, and the step graph's op count."""
    keras.utils.set_random_seed(0)
    model = _small_model()
    schedule = WarmupDecay(config.learning_rate, total_steps=steps, warmup_steps=2, kind="cosine")
    optimizer = factory(config, schedule, model)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(1)
    images = tf.constant(rng.normal(size=(4, 8, 8, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 3, size=4))

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def step(images, labels):  # in the strategy of the caller's scope (the default one, or mirrored)
        return tf.distribute.get_strategy().run(replica_step, args=(images, labels))

    before = [w.numpy() for w in model.trainable_variables]
    for _ in range(steps):
        step(images, labels)
    ops = len(step.get_concrete_function(images, labels).graph.get_operations())
    weights = {f"{i}:{w.name.split('/')[-1]}": w.numpy() for i, w in enumerate(model.weights)}
    slots = [v.numpy() for v in optimizer.variables]
    moved = max(float(np.abs(w.numpy() - b).max()) for w, b in zip(model.trainable_variables, before))
    return weights, slots, ops, moved


@pytest.mark.parametrize("recipe", [
    dict(optimizer="adamw", learning_rate=0.01, momentum=0.9, weight_decay=0.05, clip_grad_norm=None),
    dict(optimizer="adamw", learning_rate=0.01, momentum=0.8, weight_decay=0.3, clip_grad_norm=0.5),
    dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=4e-5, clip_grad_norm=None),
])
def test_fused_optimizers_compute_the_keras_updates_with_fewer_ops(recipe):
    config = load_config("spinenet49xxs", overrides=recipe)
    fused_weights, fused_slots, fused_ops, moved = _train(config, make_optimizer)
    keras_weights, keras_slots, keras_ops, _ = _train(config, _keras_optimizer)
    fused_type = {"sgd": FusedSGD, "adamw": FusedAdamW}[config.optimizer]
    assert isinstance(make_optimizer(config, 0.1, _small_model()), fused_type)
    assert not isinstance(_keras_optimizer(config, 0.1, _small_model()), fused_type)
    assert moved > 1e-3  # the steps really changed the weights
    print(recipe["optimizer"], "ops per step: fused", fused_ops, "keras", keras_ops)
    assert fused_weights.keys() == keras_weights.keys()
    for name in keras_weights:
        np.testing.assert_allclose(fused_weights[name], keras_weights[name], rtol=2e-5, atol=1e-6, err_msg=name)
    assert len(fused_slots) == len(keras_slots)  # the same checkpointed state
    for fused, plain in zip(fused_slots, keras_slots):
        np.testing.assert_allclose(fused, plain, rtol=2e-5, atol=1e-6)
    variables = 5  # conv kernel, BN gamma and beta, dense kernel and bias
    assert keras_ops - fused_ops >= 6 * variables, (fused_ops, keras_ops)  # Keras: 8-25 ops each; fused: 1-2


MIRRORED = r"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
from mobile_spinenet.backend import tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_optimizers as t
from mobile_spinenet.training.config import load_config
config = load_config("spinenet49xxs", overrides=dict(optimizer=sys.argv[2], learning_rate=0.01, weight_decay=0.05))
results = {}
for name, factory in (("fused", t.make_optimizer), ("keras", t._keras_optimizer)):
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        results[name] = t._train(config, factory)
for key in results["keras"][0]:
    np.testing.assert_allclose(results["fused"][0][key], results["keras"][0][key], rtol=2e-5, atol=1e-6, err_msg=key)
assert results["fused"][3] > 1e-3
# The weight average's fused update, in the trainer's cross-replica context, on both copies.
from mobile_spinenet.training.ema import WeightAverage
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    weight = tf.Variable([1.0, 2.0])
    average = WeightAverage([weight], decay=0.9)
weight.assign([3.0, 0.0])
tf.function(average.update)()
for copy in strategy.experimental_local_results(average.shadows[0]):  # d = min(0.9, 1/10) at t = 0
    np.testing.assert_allclose(copy.numpy(), [0.1 * 1 + 0.9 * 3, 0.1 * 2 + 0.9 * 0], rtol=1e-6)
print("same under MirroredStrategy")
"""


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_fused_optimizers_update_mirrored_variables_like_keras(optimizer, tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(script), os.path.dirname(__file__), optimizer], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same under MirroredStrategy" in result.stdout
