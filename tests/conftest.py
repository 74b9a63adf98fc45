import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# run.sh runs the suite on two pytest-xdist workers, one per core: most of a test's time is
# single-threaded Python (graph building, tfmot, the TFLite converter), so two workers overlap it.
# Each worker's TensorFlow gets one thread for an op's inner loop; with two each, two workers would
# put four spinning threads on two cores. Child processes (the SIGKILL test's trainer) inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The modules that take half a minute or more on one worker, longest first (their tests among the 60
# longest of the fresh-clone CI run of 2026-12-05). run.sh passes --no-loadscope-reorder, so the two
# workers take whole modules in collection order: these go first and the short ones fill in at the
# end. Otherwise xdist orders modules by their number of tests, and a two-test module holding the
# suite's longest test (test_demo_checkpoints) could start last while the other worker sat idle.
# A module left off this list only costs time, never a result.
LONGEST_MODULES = ("test_export.py", "test_models.py", "test_demo_checkpoints.py", "test_model_garden_import.py",
                   "test_classification.py", "test_training.py", "test_training_speed.py", "test_run_safety.py",
                   "test_mask_rcnn.py", "test_model_garden_parity.py", "test_tflite_float.py",
                   "test_instance_data_eval.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = os.path.basename(str(item.path))
        return LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)

    items.sort(key=rank)  # stable: a module's tests keep their order


def randomize_batch_norm(model, seed=0, size=None):
    """Give every BN layer the statistics of a random batch and a random affine, so outputs
    are O(1) (at init they are ~1e-6, and made-up statistics blow up through 100+ layers):
    numerical comparisons between runtimes can then fail."""
    from mobile_spinenet.backend import keras

    rng = np.random.default_rng(seed)
    size = size or int(model.inputs[0].shape[1])
    batch = rng.uniform(-1, 1, (4, size, size, 3)).astype("float32")
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        gamma, beta, _, _ = layer.get_weights()
        layer.gamma.assign(rng.uniform(0.8, 1.25, gamma.shape).astype("float32"))
        layer.beta.assign(rng.uniform(-0.2, 0.2, beta.shape).astype("float32"))
        layer.momentum = 0.0  # one training-mode pass sets the moving statistics to the batch's
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.99
        # floor the variances: a near-constant channel would amplify rounding by 1/sqrt(eps)
        layer.moving_variance.assign(layer.moving_variance + 0.05)


def spread_predictions(model, seed=0):
    """Give the predictors wide random kernels: at init (N(0, 0.01)) the class logits sit at the
    prior bias with almost no spread, and detections would be few and tied."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.endswith("_predict") or (layer.name.endswith("_pw") and "ssd_" in layer.name):
            std, bias = (0.5, -2.0) if "class" in layer.name else (0.1, 0.0)
            layer.kernel.assign(rng.normal(0, std, layer.kernel.shape).astype("float32"))
            layer.bias.assign(np.full(layer.bias.shape, bias, "float32"))


@pytest.fixture
def images():
    def make(size, batch=1, seed=0):
        return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    return make
