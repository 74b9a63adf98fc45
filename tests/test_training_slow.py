"""A few minutes of training on the demo data lifts val AP well above an untrained model."""
import json
import os
import subprocess
import sys

import pytest

from mobile_spinenet.data.demo import make_demo_dataset

pytestmark = pytest.mark.slow


def test_training_spinenet49xxs_on_demo_data_lifts_val_ap(tmp_path):
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.detector_eval import evaluate_predictor, keras_predictor
    from mobile_spinenet.training.precise_bn import recompute_bn_statistics
    from mobile_spinenet.zoo import build_model, model_anchors

    folders = make_demo_dataset(str(tmp_path / "demo"), seed=0, train_images=800, val_images=100)
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "mobile_spinenet", "train", "--model", "spinenet49xxs",
                    "--config", "cpu_demo", "--image-size", "256", "--data", folders["train"], "--val",
                    folders["val"], "--out", str(run), "--no-progress"], env=env, check=True, timeout=1800)
    trained = json.loads((run / "run.json").read_text())["last_epoch"]

    train, val = read_dataset(folders["train"]), read_dataset(folders["val"])
    untrained = build_model("spinenet49xxs", image_size=256, num_classes=10)
    recompute_bn_statistics(untrained, train, 256)  # the same BN treatment as the trained model
    baseline, _ = evaluate_predictor(keras_predictor(untrained, model_anchors("spinenet49xxs", 256)), val, 256)
    print(f"val AP untrained {baseline['AP']:.4f} / trained {trained['val_AP']:.4f}; "
          f"AP50 {baseline['AP50']:.4f} / {trained['val_AP50']:.4f}")
    assert trained["val_AP50"] > 0.05
    assert trained["val_AP"] > 10 * baseline["AP"] + 0.01
