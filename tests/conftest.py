import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def randomize_batch_norm(model, seed=0):
    """Give every BN layer non-trivial statistics so outputs are O(1), not ~0 as at init,
    and numerical comparisons between runtimes can fail."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.8, 1.6, gamma.shape).astype("float32"),
                               rng.uniform(-0.3, 0.3, beta.shape).astype("float32"),
                               rng.uniform(-0.05, 0.05, mean.shape).astype("float32"),
                               rng.uniform(0.2, 0.6, var.shape).astype("float32")])


@pytest.fixture
def images():
    def make(size, batch=1, seed=0):
        return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    return make
