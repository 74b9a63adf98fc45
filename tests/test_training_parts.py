"""Losses, learning-rate schedule, config layering and atomic checkpoints."""
import os

import numpy as np
import pytest

from mobile_spinenet.backend import tf
from mobile_spinenet.training.checkpoints import AtomicCheckpoints
from mobile_spinenet.training.config import load_config, read_saved_config, save_config
from mobile_spinenet.training.losses import LossConfig, detection_losses, focal_loss_sum, huber_loss_sum
from mobile_spinenet.training.schedule import WarmupDecay


def test_focal_loss_matches_the_formula_and_skips_ignored_anchors():
    logits = np.array([[[2.0, -1.0], [0.5, 0.3], [3.0, 3.0]]], np.float32)
    targets = np.array([[0, -1, -2]])
    alpha, gamma = 0.25, 1.5
    p = 1 / (1 + np.exp(-logits[0, :2]))
    expected = (alpha * (1 - p[0, 0]) ** gamma * -np.log(p[0, 0])           # positive, class 0
                + (1 - alpha) * p[0, 1] ** gamma * -np.log(1 - p[0, 1])        # negative class 1 of anchor 0
                + ((1 - alpha) * p[1] ** gamma * -np.log(1 - p[1])).sum())     # background anchor
    assert float(focal_loss_sum(logits, targets, alpha, gamma)) == pytest.approx(expected, rel=1e-5)


def test_huber_loss_and_normalisation_by_positives():
    codes = np.array([[[0.05, 0.3, 0, 0], [9, 9, 9, 9]]], np.float32)
    targets = {"classes": np.array([[1, -1]]), "boxes": np.zeros((1, 2, 4), np.float32)}
    delta = 0.1
    expected_sum = 0.5 * 0.05 ** 2 + (0.5 * delta ** 2 + delta * 0.2)
    assert float(huber_loss_sum(codes, targets["boxes"], targets["classes"] >= 0, delta)) == pytest.approx(expected_sum)
    outputs = {"classes": np.zeros((1, 2, 3), np.float32), "boxes": codes}
    _, box_one = detection_losses(outputs, targets, LossConfig(), num_positives=1.0)
    _, box_two = detection_losses(outputs, targets, LossConfig(), num_positives=2.0)
    assert float(box_one) == pytest.approx(expected_sum / 4) and float(box_two) == pytest.approx(expected_sum / 8)


def test_schedule_warmup_steps_and_cosine():
    step = WarmupDecay(0.1, total_steps=100, warmup_steps=10, kind="step")
    values = [float(step(s)) for s in (0, 5, 10, 83, 84, 92, 96, 99)]
    np.testing.assert_allclose(values, [0, 0.05, 0.1, 0.1, 0.01, 0.001, 1e-4, 1e-4], rtol=1e-5, atol=1e-9)
    cosine = WarmupDecay(0.1, total_steps=110, warmup_steps=10, kind="cosine")
    assert float(cosine(60)) == pytest.approx(0.05) and float(cosine(110)) == pytest.approx(0.0, abs=1e-9)


def test_config_layers_model_yaml_user_yaml_and_flags(tmp_path):
    base = load_config("spinenet49xxs")
    assert (base.epochs, base.batch_size, base.momentum, base.weight_decay) == (600, 256, 0.9, 4e-5)
    assert (base.focal_alpha, base.focal_gamma) == (0.25, 1.5)
    assert base.resolved_learning_rate() == pytest.approx(0.32)
    user = tmp_path / "mine.yaml"
    user.write_text("epochs: 12\nbatch_size: 32\n")
    config = load_config("spinenet49xxs", str(user), {"batch_size": 8, "learning_rate": None})
    assert (config.epochs, config.batch_size) == (12, 8)
    assert config.resolved_learning_rate() == pytest.approx(0.01)
    save_config(config, str(tmp_path / "config.yaml"))
    assert read_saved_config(str(tmp_path / "config.yaml")) == config
    assert load_config("spinenet49").dropblock_keep_prob == 0.9 and load_config("spinenet49").epochs == 250
    user.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match=r"mine.yaml: unknown field\(s\) epochz"):
        load_config("spinenet49xxs", str(user))
    with pytest.raises(ValueError, match="unknown model id"):
        load_config("spinenet7")
    with pytest.raises(ValueError, match="schedule"):
        load_config("spinenet49xxs", overrides={"schedule": "linear"})


def test_checkpoints_are_atomic_and_pruned(tmp_path):
    variable = tf.Variable(1.0)
    manager = AtomicCheckpoints(str(tmp_path), tf.train.Checkpoint(v=variable), keep=2)
    for step in (1, 2, 3):
        variable.assign(float(step))
        manager.save(step)
    assert sorted(os.listdir(tmp_path)) == ["latest", "step-00000002", "step-00000003"]
    os.makedirs(tmp_path / ".tmp-step-00000004-123")  # what a kill during a write leaves behind
    variable.assign(0.0)
    assert manager.restore_latest().endswith(os.path.join("step-00000003", "ckpt"))
    assert float(variable.numpy()) == 3.0


def test_each_id_takes_its_family_recipe_then_its_own_overrides(tmp_path, monkeypatch):
    import shutil

    from mobile_spinenet.registry import MODELS
    from mobile_spinenet.training import config as config_module

    for model_id, info in MODELS.items():
        resolved = config_module.load_config(model_id)
        assert resolved.image_size == info.image_size and resolved.model == model_id
    assert {info.recipe for info in MODELS.values()} == {"mobile", "spinenet", "resnet_fpn"}
    assert config_module.load_config("mnv3_small_ssdlite").epochs == config_module.load_config("spinenet49xs").epochs
    assert config_module.load_config("spinenet49").dropblock_keep_prob == 0.9
    assert config_module.load_config("resnet50_fpn").dropblock_keep_prob is None
    copy = tmp_path / "configs"
    shutil.copytree(config_module.CONFIG_DIR, copy)
    (copy / "spinenet96.yaml").write_text("epochs: 350\n")  # a per-model override over the family recipe
    monkeypatch.setattr(config_module, "CONFIG_DIR", str(copy))
    assert config_module.load_config("spinenet96").epochs == 350
    assert config_module.load_config("spinenet49").epochs == 250
