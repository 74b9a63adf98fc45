"""A few minutes of training on the demo data lifts val AP well above an untrained model."""
import json
import os
import subprocess
import sys

import pytest

from mobile_spinenet.data.demo import make_demo_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """spinenet49xxs trained with the cpu_demo recipe on 800 demo images (a few CPU minutes)."""
    root = tmp_path_factory.mktemp("slow")
    folders = make_demo_dataset(str(root / "demo"), seed=0, train_images=800, val_images=100)
    run = root / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "mobile_spinenet", "train", "--model", "spinenet49xxs",
                    "--config", "cpu_demo", "--image-size", "256", "--data", folders["train"], "--val",
                    folders["val"], "--out", str(run), "--no-progress"], env=env, check=True, timeout=1800)
    return run, folders


def test_training_spinenet49xxs_on_demo_data_lifts_val_ap(trained):
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.detector_eval import evaluate_predictor, keras_predictor
    from mobile_spinenet.training.precise_bn import recompute_bn_statistics
    from mobile_spinenet.zoo import build_model, model_anchors

    run, folders = trained
    trained = json.loads((run / "run.json").read_text())["last_epoch"]

    train, val = read_dataset(folders["train"]), read_dataset(folders["val"])
    untrained = build_model("spinenet49xxs", image_size=256, num_classes=10)
    from mobile_spinenet.training.runs import open_run
    from mobile_spinenet.training.tasks import DetectionTask
    config = open_run(str(run)).config  # the same BN treatment as the trained model: its images, its batches
    recompute_bn_statistics(untrained, DetectionTask(config, train, 256).bn_image_batches(config.precise_bn_images,
                                                                                         config.batch_size))
    baseline, _ = evaluate_predictor(keras_predictor(untrained, model_anchors("spinenet49xxs", 256)), val, 256)
    print(f"val AP untrained {baseline['AP']:.4f} / trained {trained['val_AP']:.4f}; "
          f"AP50 {baseline['AP50']:.4f} / {trained['val_AP50']:.4f}")
    # Seven runs of this recipe measured AP 0.0097-0.0252 and AP50 0.0295-0.059 (CPU training is not bit-reproducible
    # here and the runs diverge, docs/training.md); an untrained model scores 0.000, the dead-head bug gave AP50 0.010.
    # The bounds sit at half (AP) and two thirds (AP50) of the worst run.
    assert trained["val_AP50"] > 0.02
    assert trained["val_AP"] > 10 * baseline["AP"] + 0.005


def test_qat_int8_export_of_the_trained_model_passes_and_a_grey_calibrated_ptq_is_caught(trained, tmp_path):
    """The shipping path (QAT, then int8 with the learned ranges) passes verification with high agreement;
    PTQ calibrated on grey images is rejected. (Plain PTQ of this briefly trained model sits at the edge of
    the 50% agreement rule, 44-100% over runs, docs/quantization.md, so it is not the 'good' case here.)"""
    from PIL import Image

    from mobile_spinenet.cli import main

    run, folders = trained
    qat_dir = tmp_path / "qat"
    assert main(["qat", "--from", str(run), "--data", folders["train"], "--epochs", "0.25",
                 "--out", str(qat_dir), "--no-progress"]) == 0
    assert main(["export", str(qat_dir), "--quant", "int8", "--out", str(tmp_path / "ok.tflite")]) == 0
    good = json.loads((tmp_path / "ok.json").read_text())["verification"]
    grey = tmp_path / "grey"
    source = json.loads(open(os.path.join(folders["val"], "annotations.json")).read())
    os.makedirs(grey / "images")
    for image in source["images"]:
        Image.new("RGB", (image["width"], image["height"]), (128, 128, 128)).save(grey / "images" / image["file_name"])
    (grey / "annotations.json").write_text(json.dumps(source))
    assert main(["export", str(run), "--quant", "int8", "--calib", str(grey), "--calib-steps", "64",
                 "--out", str(tmp_path / "bad.tflite")]) == 2
    bad = json.loads((tmp_path / "bad.rejected.json").read_text())["verification"]
    print(f"int8 verification: QAT agreement {good['agreement']:.2f} drop {good['ap_drop']:.2f}; "
          f"grey-calibrated PTQ agreement {bad['agreement']:.2f} drop {bad['ap_drop']:.2f}")
    assert good["passed"] and good["agreement"] >= 0.8
    assert not bad["passed"] and bad["agreement"] < 0.2
