"""Precise BN: the moving statistics become the average of the batch statistics, computed in one
traced graph that later re-estimates reuse."""
import numpy as np

from mobile_spinenet.backend import keras
from mobile_spinenet.training.precise_bn import _FORWARD, recompute_bn_statistics


def test_moving_statistics_become_the_mean_of_the_batch_statistics_in_one_trace():
    inputs = keras.Input((6, 6, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    outputs = keras.layers.BatchNormalization(momentum=0.99, name="bn")(features)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, 1 + k, (5, 6, 6, 3)).astype(np.float32) for k in range(3)]
    conv = model.get_layer("conv")
    means, variances = [], []
    for images in batches:
        x = conv(images).numpy().reshape(-1, 4)
        means.append(x.mean(0))
        variances.append(x.var(0, ddof=1))  # TensorFlow's training-mode update keeps the unbiased variance
    assert recompute_bn_statistics(model, iter(batches)) == 3
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean(variances, 0), rtol=1e-4)
    assert bn.momentum == 0.99  # given back
    forward = _FORWARD[model]
    recompute_bn_statistics(model, iter(batches[:2]))
    assert _FORWARD[model] is forward and forward.experimental_get_tracing_count() == 1  # traced once
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means[:2], 0), rtol=1e-4, atol=1e-5)
