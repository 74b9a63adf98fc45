"""Classification (#12 item 6): `train --task classification` on class folders, top-1/top-5 eval of
the run and of its int8 file, the MobileNetV3 classifier, and the pieces (loss, top-k, task checks)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from mobile_spinenet.cli import main

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def _class_folders(root, per_class: int, seed: int):
    """Three classes a classifier learns in a few steps: noisy squares of one colour each."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        os.makedirs(root / name, exist_ok=True)
        for k in range(per_class):
            image = np.clip(np.asarray(colour) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / name / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    train, val = _class_folders(root / "train", 16, 0), _class_folders(root / "val", 6, 1)
    run = root / "run"
    # MobileNetV3-Small traces fastest; SpineNet's classifier trains the same way (docs/classification.md)
    assert main(["train", "--task", "classification", "--model", "mnv3_small_ssdlite", "--data", str(train), "--val",
                 str(val), "--out", str(run), "--image-size", "64", "--epochs", "8", "--batch", "8",
                 "--config", "cpu_fast", "--lr", "0.004", "--warmup-epochs", "0.5", "--no-progress"]) == 0
    return {"run": run, "train": train, "val": val, "root": root}


def test_a_classifier_trains_on_class_folders_and_is_scored_by_top1(trained, capsys):
    run = trained["run"]
    rows = [json.loads(json.dumps(r)) for r in __import__("csv").DictReader(open(run / "metrics.csv"))]
    assert len(rows) == 8 and all(r["val_AP"] == "" and r["box_loss"] == "" for r in rows)
    losses = [float(r["class_loss"]) for r in rows]
    assert losses[-1] < 0.8 * losses[0]  # softmax cross-entropy falls
    # chance is 1/3; before precise BN sampled the class folders in a random order, each BN batch held
    # one class, the population variance missed the between-class part and every val image got one class
    assert float(rows[-1]["val_top1"]) >= 0.9
    assert float(rows[-1]["val_top5"]) == 1.0  # three classes: always in the top five
    record = json.loads((run / "run.json").read_text())
    assert record["task"] == "classification" and record["num_classes"] == 3
    assert json.loads((run / "label_map.json").read_text())["classes"][0]["name"] == "blue"  # sorted folders
    assert main(["eval", str(run), "--data", str(trained["val"])]) == 0
    printed = capsys.readouterr().out
    # eval --image-size: the run's weights in a model built for that input (its own size: the same scores)
    from mobile_spinenet.eval.evaluate import evaluate_classifier_path
    from mobile_spinenet.training.runs import open_run

    assert open_run(str(run)).at_input_size(96).model().input_shape[1:3] == (96, 96)
    own = evaluate_classifier_path(str(run), str(trained["val"]))
    # top-1 with its binomial standard error on the 18 val images
    se = 100 * np.sqrt(own["top1"] * (1 - own["top1"]) / 18)
    assert f"top-1 {100 * own['top1']:.2f}% (+- {se:.2f}, one standard error on 18 images)" in printed
    assert evaluate_classifier_path(str(run), str(trained["val"]), image_size=64) == own
    assert evaluate_classifier_path(str(run), str(trained["val"]), image_size=96)["images"] == own["images"]


def test_an_int8_classifier_file_is_verified_against_keras_and_scores_the_same(trained, capsys):
    from mobile_spinenet.eval.evaluate import evaluate_classifier_path

    out = trained["root"] / "classifier.tflite"
    # more val images than a detector's default 200: a classifier's file is checked on up to 1,000
    many = _class_folders(trained["root"] / "val70", 70, 2)
    assert main(["export", str(trained["run"]), "--quant", "int8", "--out", str(out), "--val", str(many)]) == 0
    report = json.loads((trained["root"] / "classifier.json").read_text())
    assert report["task"] == "classification" and report["labels"] == sorted(COLOURS)
    check = report["verification"]
    assert check["images"] == 210
    assert check["passed"] and check["confident_images"] > 0 and check["agreement"] >= 0.9
    assert check["top1_drop_se"] >= 0
    assert "TFLite_Detection_PostProcess" not in report["ops"]["ops"]
    keras = evaluate_classifier_path(str(trained["run"]), str(trained["val"]))
    tflite = evaluate_classifier_path(str(out), str(trained["val"]))
    assert tflite["images"] == keras["images"] == 18
    assert abs(tflite["top1"] - keras["top1"]) <= 2 / 18  # at most two of 18 images change class
    assert main(["eval", str(out), "--data", str(trained["val"])]) == 0
    assert f"({tflite['images']} images" in capsys.readouterr().out
    # QAT fine-tunes detectors only: said, not attempted
    assert main(["qat", "--from", str(trained["run"]), "--data", str(trained["train"]),
                 "--out", str(trained["root"] / "qat")]) == 2
    assert "is a classification run: QAT fine-tunes detectors only" in capsys.readouterr().err


def test_predict_gives_a_classifier_runs_and_files_top_classes_with_probabilities(trained, capsys):
    images = [str(trained["val"] / "red" / "0.png"), str(trained["val"] / "blue" / "1.png")]
    out = trained["root"] / "classifier-fp32.tflite"
    assert main(["export", str(trained["run"]), "--quant", "fp32", "--out", str(out), "--no-verify"]) == 0
    for model in (trained["run"], out):
        folder = trained["root"] / f"predicted-{model.name}"
        assert main(["predict", str(model), *images, "--out", str(folder)]) == 0
        printed = capsys.readouterr().out
        results = json.loads((folder / "predictions.json").read_text())
        assert [r["top"][0]["label"] for r in results] == ["red", "blue"]
        assert f"{images[0]}: red " in printed and "predictions.json" in printed
        for result in results:
            probabilities = [c["probability"] for c in result["top"]]
            assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
            assert sum(probabilities) == pytest.approx(1, abs=1e-3)


def test_exporting_a_packed_classifier_without_val_names_the_flag_before_converting(trained, monkeypatch, capsys):
    from mobile_spinenet.quantization import export

    packed = trained["root"] / "packed"
    assert main(["pack", str(trained["run"]), "--out", str(packed)]) == 0  # no sources.json: no recorded data
    capsys.readouterr()

    def convert(*args, **kwargs):
        raise AssertionError("converted before the verification data was found")

    monkeypatch.setattr(export, "convert", convert)
    assert main(["export", str(packed), "--quant", "fp32", "--out", str(trained["root"] / "packed.tflite")]) == 2
    assert "--val: " + str(packed) + " records no val or training data" in capsys.readouterr().err


def test_a_failed_top1_check_says_how_noisy_the_drop_is_on_that_many_images(trained):
    from mobile_spinenet.data.class_folders import read_class_folders
    from mobile_spinenet.quantization.export_classifier import verify_classifier

    val = read_class_folders(str(trained["val"]))  # 18 images: blue, green, red squares

    def by_colour(batch):  # right for every image: the strongest channel names the class (blue, green, red)
        return 10 * batch.mean(axis=(1, 2))[:, ::-1]

    def always_blue(batch):
        return np.tile([5.0, 0.0, 0.0], (len(batch), 1))

    result = verify_classifier(by_colour, always_blue, val, 40, "int8", 18, "letterbox")
    assert (result["keras_top1"], round(result["tflite_top1"], 2)) == (100.0, 33.33)
    difference = np.array([1] * 12 + [0] * 6)  # Keras right and the file wrong on the 12 green and red squares
    expected = 100 * difference.std(ddof=1) / np.sqrt(18)
    assert result["top1_drop_se"] == pytest.approx(expected)
    (problem,) = [p for p in result["problems"] if "top-1 drops" in p]
    assert f"on these 18 images one standard error of the drop is {expected:.2f} points" in problem


def test_the_paired_standard_error_is_that_of_the_per_image_differences():
    from mobile_spinenet.quantization.export_classifier import paired_standard_error

    difference = np.array([1] * 7 + [-1] * 2 + [0] * 191)
    assert paired_standard_error(5, 9, 200) == pytest.approx(100 * difference.std(ddof=1) / np.sqrt(200))
    assert paired_standard_error(0, 0, 200) == 0.0


def test_the_mobilenet_v3_classifier_builds_for_the_ssdlite_ids():
    from mobile_spinenet.zoo import build_model

    for model_id, params in (("mnv3_small_ssdlite", (1.0e6, 2.5e6)), ("mnv3_large_ssdlite", (3.0e6, 5.5e6))):
        model = build_model(model_id, task="classification", image_size=96, num_classes=10)
        assert model.output_shape == (None, 10)
        assert params[0] < model.count_params() < params[1]  # the paper's 2.5M / 5.4M at 1000 classes
        assert model.get_layer("v3_head_conv").filters == (1024 if "small" in model_id else 1280)


def test_label_smoothed_cross_entropy_and_top_k():
    from mobile_spinenet.backend import tf
    from mobile_spinenet.eval.classifier_eval import top_k_correct
    from mobile_spinenet.training.losses import classification_loss

    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], np.float32)
    labels = np.array([0, 1])
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    targets = np.full((2, 3), 0.1 / 3) + 0.9 * np.eye(3)[labels]
    expected = -(targets * log_p).sum() / 4  # summed over this replica, divided by the global batch (4)
    got = float(classification_loss(tf.constant(logits), tf.constant(labels), 0.1, 4.0))
    assert got == pytest.approx(expected, rel=1e-5)
    assert top_k_correct(logits, labels, 1).tolist() == [True, False]
    # row 2 ranks class 2, then the tie 0/1 by class index: 0 -- label 1 is only third
    assert top_k_correct(logits, labels, 2).tolist() == [True, False]
    assert top_k_correct(logits, labels, 3).tolist() == [True, True]


def test_task_and_data_mismatches_are_refused_with_the_flag(trained, tmp_path):
    from mobile_spinenet.data.class_folders import read_class_folders
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.trainer import Trainer

    with pytest.raises(ValueError, match="--task must be one of detection, classification, instance-segmentation, got 'segmentation'"):
        load_config("spinenet49xxs", overrides={"task": "segmentation"})
    folders = read_class_folders(str(trained["train"]))
    detection = load_config("mnv3_small_ssdlite", overrides={"image_size": 128, "batch_size": 4})
    with pytest.raises(ValueError, match="--task detection cannot train on class folders"):
        Trainer(detection, folders, str(tmp_path / "a"), show_progress=False)
    make_split(str(tmp_path / "coco"), "train", 8, seed=3)
    classification = load_config("mnv3_small_ssdlite", overrides={"task": "classification", "image_size": 64,
                                                                 "batch_size": 4})
    with pytest.raises(ValueError, match="--task classification cannot train on a detection dataset"):
        Trainer(classification, read_dataset(str(tmp_path / "coco")), str(tmp_path / "b"), show_progress=False)


def test_a_subset_of_class_folders_spreads_over_the_classes(trained):
    from mobile_spinenet.data.class_folders import read_class_folders
    from mobile_spinenet.data.pipeline import classification_eval_dataset

    val = read_class_folders(str(trained["val"]))  # 6 per class, sorted by class
    labels = np.concatenate([y.numpy() for _, y in classification_eval_dataset(val, 64, 4, max_images=6)])
    assert sorted(set(labels.tolist())) == [0, 1, 2]  # not the first six files (all of one class)


def test_export_savedmodel_refuses_a_classifier_in_one_line_before_any_work(tmp_path, capsys):
    # it crashed with a traceback from tf.function (the classifier's output is not a dict)
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "classes",
                          "spinenet49xxs")
    assert main(["export-savedmodel", folder, "--out", str(tmp_path / "served"), "--verify-images", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{folder} is a classifier" in err and "--quant fp32" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []
