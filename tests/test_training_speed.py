"""The training speed-ups and the fast recipe's parts: XLA computes a step's numbers as the plain
graph does (up to float rounding), the weight average follows its formula, is checkpointed and
becomes the final weights, and AdamW decays kernels only."""
import os

import numpy as np
import pytest

from mobile_spinenet.backend import tf
from mobile_spinenet.data.demo import make_split
from mobile_spinenet.data.readers import read_dataset
from mobile_spinenet.host import has_native_bfloat16
from mobile_spinenet.training.config import load_config
from mobile_spinenet.training.ema import WeightAverage
from mobile_spinenet.training.trainer import WEIGHTS_FILE, Trainer

MODEL = "spinenet49xxs"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    make_split(str(root / "train"), "train", 8, seed=3)
    return read_dataset(str(root / "train"))


def _trainer(data, run_dir, **overrides):
    values = dict(image_size=128, batch_size=4, epochs=1, learning_rate=0.02, warmup_epochs=0, seed=5,
                  precise_bn_images=4, jitter=[1.0, 1.0], flip=False)
    values.update(overrides)
    return Trainer(load_config(MODEL, overrides=values), data, str(run_dir), show_progress=False)


def _first_batch(trainer):
    images, targets = next(iter(trainer.epoch_batches(0)))
    return images, targets


@pytest.mark.slow  # ~2 min of XLA compilation; XLA is off by default (3.4x slower on the CI's CPU)
def test_xla_step_computes_the_same_loss_and_gradients(data, tmp_path):
    plain = _trainer(data, tmp_path / "plain")
    compiled = _trainer(data, tmp_path / "xla", jit_compile=True)
    for a, b in zip(plain.model.weights, compiled.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # same seed: same start
    images, targets = _first_batch(plain)
    positives = tf.reduce_sum(tf.cast(targets["classes"] >= 0, tf.float32))
    parts_plain, grads_plain = plain._replica_loss_and_gradients(images, targets, positives)
    parts_xla, grads_xla = compiled._loss_and_gradients(images, targets, positives)
    assert compiled._loss_and_gradients is not compiled._replica_loss_and_gradients  # XLA really is on
    for name in parts_plain:
        np.testing.assert_allclose(float(parts_xla[name]), float(parts_plain[name]), rtol=1e-4, atol=1e-6)
    # Gradients through a deep net with batch-statistics BN change in the 3rd digit with any
    # change of summation order: oneDNN on vs off (the same graph) gives kernel gradients that
    # differ by a median 0.2% and at most 0.5% (relative norm); XLA lies in that band. Biases
    # before BN are left out: their true gradient is zero and they hold only rounding.
    relative = []
    for variable, g_plain, g_xla in zip(plain.model.trainable_variables, grads_plain, grads_xla):
        if "kernel" in variable.name:
            g_plain, g_xla = np.asarray(g_plain, np.float64), np.asarray(g_xla, np.float64)
            relative.append(np.linalg.norm(g_plain - g_xla) / max(np.linalg.norm(g_plain), 1e-12))
    assert np.median(relative) < 0.005 and max(relative) < 0.01, (np.median(relative), max(relative))
    # and a whole optimizer step moves the weights by the same amount
    before = [v.numpy().astype(np.float64) for v in plain.model.trainable_variables]
    plain.train_step(images, targets)
    compiled.train_step(images, targets)
    for start, a, b in zip(before, plain.model.trainable_variables, compiled.model.trainable_variables):
        if "kernel" in a.name:
            step_plain, step_xla = a.numpy() - start, b.numpy() - start
            assert np.linalg.norm(step_plain - step_xla) <= 0.01 * np.linalg.norm(step_plain), a.name


def _kernel_gradient_errors(trainer, grads, reference_grads):
    """Per kernel: |g - g_ref| / |g_ref| (biases before BN hold only rounding and are left out)."""
    relative = []
    for variable, g, g_ref in zip(trainer.model.trainable_variables, grads, reference_grads):
        if "kernel" in variable.name:
            g, g_ref = np.asarray(g, np.float64), np.asarray(g_ref, np.float64)
            relative.append(np.linalg.norm(g - g_ref) / max(np.linalg.norm(g_ref), 1e-12))
    return np.asarray(relative)


@pytest.mark.skipif(not has_native_bfloat16(),
                    reason="bfloat16 training needs AVX-512 BF16 or AMX (refused elsewhere: emulated, far off float32)")
def test_a_bfloat16_step_computes_the_float32_step_to_bfloat16_precision(data, tmp_path):
    """--precision mixed_bfloat16: layers compute in bfloat16 (8 significant bits, 0.4% per
    rounding), weights, losses and updates stay float32, and a step is the float32 step up to that
    rounding carried through the network; the weights it writes are float32."""
    full = _trainer(data, tmp_path / "float32")
    half = _trainer(data, tmp_path / "bfloat16", precision="mixed_bfloat16")
    assert half.policy == "mixed_bfloat16" and half.model.layers[-1].compute_dtype == "bfloat16"
    for a, b in zip(full.model.weights, half.model.weights):
        assert b.dtype == tf.float32
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # same seed: same start
    images, targets = _first_batch(full)
    positives = tf.reduce_sum(tf.cast(targets["classes"] >= 0, tf.float32))
    parts_full, grads_full = full._replica_loss_and_gradients(images, targets, positives)
    parts_half, grads_half = half._replica_loss_and_gradients(images, targets, positives)
    for name in parts_full:
        assert parts_half[name].dtype == tf.float32, name
        # a few roundings of 0.4% each, averaged over the batch's anchors: within 2% (a bug, such
        # as a loss summed in bfloat16 or a box code left uncast, is off by far more)
        np.testing.assert_allclose(float(parts_half[name]), float(parts_full[name]), rtol=0.02, atol=1e-4)
    relative = _kernel_gradient_errors(full, grads_half, grads_full)
    # carried through ~40 layers of bfloat16 products, each kernel's gradient keeps its direction
    # and size to a few percent (a float32 step differs from another float32 step by 0.5%)
    assert np.median(relative) < 0.05 and max(relative) < 0.25, (np.median(relative), max(relative))
    # after the step, weights and slots are float32 and the model built later in the process is too
    half.train_step(images, targets)
    assert all(v.dtype == tf.float32 for v in half.model.weights)
    from mobile_spinenet.zoo import build_model
    assert build_model("mnv3_small_ssdlite", image_size=128, num_classes=2).layers[-1].compute_dtype == "float32"


ONE_STEP = r"""
import sys
sys.path.insert(0, sys.argv[3])  # this test module: the same trainer as the in-process tests
import numpy as np
from mobile_spinenet.backend import tf
from mobile_spinenet.data.readers import read_dataset
from test_training_speed import _first_batch, _trainer
data, out = sys.argv[1], sys.argv[2]
trainer = _trainer(read_dataset(data), out + "-run")
images, targets = _first_batch(trainer)
positives = tf.reduce_sum(tf.cast(targets["classes"] >= 0, tf.float32))
parts, gradients = trainer._replica_loss_and_gradients(images, targets, positives)
kernels = [v for v in trainer.model.trainable_variables if "kernel" in v.name]
start = {v.name: v.numpy() for v in kernels}
trainer.train_step(images, targets)
np.savez(out, **{"part/" + k: float(v) for k, v in parts.items()},
         **{"start/" + n: w for n, w in start.items()},
         **{"grad/" + v.name: g.numpy() for v, g in zip(trainer.model.trainable_variables, gradients)
            if "kernel" in v.name},
         **{"move/" + v.name: v.numpy() - start[v.name] for v in kernels})
"""


def test_onednn_kernels_compute_the_same_step_as_tensorflows_default_ones(tmp_path):
    """The kit turns oneDNN on (backend.py; 1.35-1.5x faster steps on an AVX2 CPU, where TensorFlow
    leaves it off). It is read when TensorFlow is imported, so each side is its own process."""
    import os
    import subprocess
    import sys

    data_dir = str(tmp_path / "data")
    make_split(data_dir, "train", 8, seed=3)
    results = {}
    for flag in ("0", "1"):
        out = str(tmp_path / f"onednn{flag}.npz")
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "TF_NUM_INTRAOP_THREADS": "2",
               "MOBILE_SPINENET_SHOW_CUDA_PROBE": "1"}
        done = subprocess.run([sys.executable, "-c", ONE_STEP, data_dir, out, os.path.dirname(__file__)],
                              capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert ("oneDNN custom operations are on" in done.stderr) == (flag == "1")  # really off, really on
        results[flag] = np.load(out)
    off, on = results["0"], results["1"]
    names = off.files
    assert sorted(names) == sorted(on.files)
    for name in names:
        if name.startswith("start/"):
            np.testing.assert_array_equal(on[name], off[name])  # the same seeded start
        if name.startswith("part/"):
            np.testing.assert_allclose(on[name], off[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # The same band as XLA's (test_xla_step_computes_the_same_loss_and_gradients). Both sides use two
    # threads: oneDNN at one thread against two (a change of summation order only) differs by a
    # median 0.7% and at most 2.1%, as much as oneDNN against Eigen at one thread.
    relative = [np.linalg.norm(on[n].astype(np.float64) - off[n]) / max(np.linalg.norm(off[n].astype(np.float64)),
                                                                         1e-12)
                for n in names if n.startswith("grad/")]
    assert np.median(relative) < 0.005 and max(relative) < 0.01, (np.median(relative), max(relative))
    assert 0 < np.median(relative)  # the two really ran different kernels
    for name in names:
        if name.startswith("move/"):
            assert np.linalg.norm(on[name] - off[name]) <= 0.01 * np.linalg.norm(off[name]), name


@pytest.mark.parametrize("fused", [True, False])
def test_weight_average_follows_its_formula_and_swaps_back(fused):
    weight = tf.Variable([1.0, 2.0])
    average = WeightAverage([weight], decay=0.9, fused=fused)
    expected = np.array([1.0, 2.0])
    for t, value in enumerate(([3.0, 0.0], [5.0, 4.0], [-1.0, 1.0])):
        weight.assign(value)
        average.update()
        decay = min(0.9, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * np.array(value)
        np.testing.assert_allclose(average.shadows[0].numpy(), expected, rtol=1e-6)
    with average.swapped():
        np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(weight.numpy(), [-1.0, 1.0])
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage([weight], decay=1.0)


@pytest.mark.slow  # ~45 s; the demo checkpoints were trained with EMA, and its config and flags are tested fast
def test_ema_run_saves_the_average_and_checkpoints_it(data, tmp_path):
    trainer = _trainer(data, tmp_path / "ema", ema_decay=0.5, epochs=1)
    trainer.fit()
    assert int(trainer.ema.updates.numpy()) == trainer.total_steps == 2
    live = [v.numpy().copy() for v in trainer.model.trainable_variables]
    for value, shadow in zip(live, trainer.ema.shadows):  # adopt(): the model holds the average
        np.testing.assert_array_equal(value, shadow.numpy())
    saved = _trainer(data, tmp_path / "other", ema_decay=0.5)
    saved.model.load_weights(str(tmp_path / "ema" / WEIGHTS_FILE))
    for value, variable in zip(live, saved.model.trainable_variables):
        np.testing.assert_array_equal(value, variable.numpy())
    reader = tf.train.load_checkpoint(trainer.checkpoints.latest())
    assert any("ema" in name for name in reader.get_variable_to_shape_map())


def test_adamw_decays_kernels_only(data, tmp_path):
    trainer = _trainer(data, tmp_path / "adamw", optimizer="adamw", weight_decay=0.05, learning_rate=1e-3)
    assert trainer.l2_coefficient == 0.0  # no L2 term in the loss on top of decoupled decay
    optimizer = trainer.optimizer
    excluded = {v.name for v in trainer.model.trainable_variables if not optimizer._use_weight_decay(v)}
    assert excluded and all("kernel" not in name for name in excluded)
    assert any("gamma" in name or "beta" in name for name in excluded)
    assert all(optimizer._use_weight_decay(v) for v in trainer.model.trainable_variables if "kernel" in v.name)


def test_unknown_optimizer_is_refused_before_any_work():
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adamw, got 'adam'"):
        load_config(MODEL, overrides={"optimizer": "adam"})


def test_bench_variants_are_checked_and_the_table_shows_the_ratio():
    from mobile_spinenet.training.bench import check_variants, format_bench

    with pytest.raises(ValueError, match="--variants: unknown fast; known: recipe, plain, xla, unfused, bfloat16, no-onednn, before"):
        check_variants(["plain", "fast"])
    rows = [{"variant": v, "model": MODEL, "image_size": 256, "batch_size": 16, "steps": 8, "rounds": 4,
             "images_per_s": ips, "median_step_ms": 1000.0, "median_wait_ms": 1.0, "input_wait_share": share}
            for v, ips, share in (("plain", 10.0, 0.01), ("xla", 5.0, 0.2))]
    table = format_bench(rows).splitlines()
    assert " cores, " in table[0]  # the CPU the figures were measured on, first
    assert "interleaved in 4 rounds" in table[1]
    assert " 0.50x" in table[4] and "INPUT-BOUND" in table[4]
    assert " 1.00x" in table[3] and "ok" in table[3]


def test_bench_builds_every_trainer_before_it_warms_any_up(tmp_path, monkeypatch):
    # Building a trainer seeds TensorFlow, which clears its kernel cache: a trainer warmed up before
    # another was built paid ~5 s again in its first timed step (seen as 7.8 vs 14.8 images/s).
    from mobile_spinenet.training import bench, trainer as trainer_module

    events = []

    class RecordingTrainer:
        def __init__(self, config, dataset, run_dir, show_progress):
            self.name, self.image_size, self.steps_per_epoch = os.path.basename(run_dir), config.image_size, 100
            events.append(("build", self.name))

        def epoch_batches(self, epoch):
            return iter([(None, None)] * 100)

        def train_step(self, images, targets):
            events.append(("step", self.name))
            return {"loss": 0.0}

    monkeypatch.setattr(trainer_module, "Trainer", RecordingTrainer)
    setup = {"model_id": MODEL, "image_size": 64, "batch_size": 2, "warmup": 2, "strategy": "default", "recipe": None}
    make_split(str(tmp_path / "data"), "train", 2, seed=0)
    timings = bench._timings(setup, str(tmp_path / "data"), ["plain", "unfused"], 2, 2, str(tmp_path))
    assert events[:2] == [("build", "run-plain"), ("build", "run-unfused")]
    assert events[2:] == [("step", "run-plain")] * 2 + [("step", "run-unfused")] * 2 + (
        [("step", "run-plain"), ("step", "run-unfused")] * 2)  # warm-ups, then the rounds
    assert [len(timings[v]["steps"]) for v in ("plain", "unfused")] == [2, 2]


def test_recipe_flags_reach_the_config_and_bad_values_name_the_flag():
    import subprocess
    import sys

    from mobile_spinenet.commands.train import _train_overrides
    from mobile_spinenet.cli import build_parser

    args = build_parser().parse_args(["train", "--model", MODEL, "--data", "d", "--out", "o", "--optimizer", "adamw",
                                      "--ema-decay", "0.999", "--xla", "--mosaic", "0.5", "--anchor-scale", "3"])
    overrides = _train_overrides(args)
    assert load_config(MODEL, overrides=overrides).anchor_scale == 3.0
    with pytest.raises(ValueError, match=r"--anchor-scale must be > 0, got -1.0"):
        load_config(MODEL, overrides={"anchor_scale": -1.0})
    with pytest.raises(ValueError, match="mnv3_small_ssdlite .* does not take anchor scale 3.0"):  # SSD anchors
        load_config("mnv3_small_ssdlite", overrides={"anchor_scale": 3.0})
    ssd = build_parser().parse_args(["train", "--model", "mnv3_small_ssdlite", "--data", "d", "--out", "o",
                                     "--ssd-min-scale", "0.1"])
    assert load_config("mnv3_small_ssdlite", overrides=_train_overrides(ssd)).ssd_min_scale == 0.1
    with pytest.raises(ValueError, match=r"--ssd-min-scale must be in \(0, 0.95\), got 0.95"):
        load_config("mnv3_small_ssdlite", overrides={"ssd_min_scale": 0.95})
    with pytest.raises(ValueError, match="spinenet49xxs .* does not take ssd min scale 0.1: .*--anchor-scale"):
        load_config(MODEL, overrides={"ssd_min_scale": 0.1})
    assert overrides["optimizer"] == "adamw" and overrides["ema_decay"] == 0.999 and overrides["jit_compile"] is True
    assert load_config(MODEL, overrides=overrides).mosaic == 0.5
    with pytest.raises(ValueError, match=r"--mosaic must be in \[0, 1\], got 1.5"):
        load_config(MODEL, overrides={"mosaic": 1.5})
    with pytest.raises(ValueError, match="--mosaic is for detection training, not --task classification"):
        load_config(MODEL, overrides={"mosaic": 0.5, "task": "classification"})
    config = load_config(MODEL, "cpu_fast")
    assert config.optimizer == "adamw" and config.ema_decay == 0.999 and not config.jit_compile
    result = subprocess.run([sys.executable, "-m", "mobile_spinenet", "train", "--model", MODEL, "--data", "d",
                             "--out", "o", "--ema-decay", "1.5"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "--ema-decay must be in (0, 1), got 1.5 (config field ema_decay)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # four processes that each build a model: 1-3 minutes
def test_bench_runs_an_environment_variant_in_its_own_processes(tmp_path):
    from mobile_spinenet.training.bench import bench_train

    messages = []
    results = bench_train(MODEL, image_size=128, batch_size=2, steps=2, warmup=0, variants=["recipe", "before"],
                          rounds=2, progress=messages.append)
    assert [r["variant"] for r in results] == ["recipe", "before"]
    assert [r["onednn"] for r in results] == [True, False]  # the kit's default, and TensorFlow's on this CPU
    assert [r["fused_updates"] for r in results] == [True, False]  # before: Keras's per-variable updates too
    assert all(r["images_per_s"] > 0 and r["image_size"] == 128 for r in results)
    assert messages == [f"round {r}/2: {v}, 1 steps in a new process" for r in (1, 2) for v in ("recipe", "before")]
