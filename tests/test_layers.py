import numpy as np

from mobile_spinenet.backend import tf
from mobile_spinenet.layers import DropBlock, HardSigmoid, HardSwish, StochasticDepth


def test_hard_sigmoid_is_relu6_plus_3_over_6():
    x = tf.constant([-4.0, -3.0, 0.0, 1.5, 3.0, 5.0])
    expected = np.clip(x.numpy() + 3.0, 0, 6) / 6.0  # not x 1.6667: the public QAT defect
    np.testing.assert_allclose(HardSigmoid()(x).numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(HardSwish()(x).numpy(), x.numpy() * expected, atol=1e-6)
    assert HardSigmoid()(tf.constant([100.0])).numpy()[0] == 1.0


def test_stochastic_depth_drops_whole_samples_only_in_training():
    x = tf.ones([64, 4, 4, 2])
    layer = StochasticDepth(0.5)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    y = layer(x, training=True).numpy()
    per_sample = y.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert (per_sample.min(1) == per_sample.max(1)).all()
    assert 10 < (per_sample[:, 0] == 0).sum() < 54


def test_dropblock_drops_about_the_requested_share_in_training():
    tf.random.set_seed(0)
    x = tf.ones([16, 32, 32, 8])
    layer = DropBlock(keep_prob=0.9, block_size=3)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    dropped = (layer(x, training=True).numpy() == 0).mean()
    assert 0.05 < dropped < 0.15
