"""`mobile-spinenet export` end to end: a run directory in, a verified .tflite with labels and a
report out; a deliberately broken int8 calibration is caught and nothing good is overwritten."""
import json
import os
from dataclasses import replace

import numpy as np
import pytest
from conftest import randomize_batch_norm, spread_predictions
from PIL import Image

from mobile_spinenet.backend import keras
from mobile_spinenet.cli import main
from mobile_spinenet.data.demo import make_split
from mobile_spinenet.data.readers import read_dataset
from mobile_spinenet.eval.detector_eval import keras_predictor, predict_dataset
from mobile_spinenet.eval.evaluate import evaluate_path
from mobile_spinenet.quantization.export import sidecar_paths
from mobile_spinenet.quantization.export_run import SOURCES_FILE
from mobile_spinenet.quantization.metadata import read_metadata
from mobile_spinenet.quantization.postprocess_op import OUTPUT_NAMES
from mobile_spinenet.training.config import load_config, save_config
from mobile_spinenet.training.trainer import WEIGHTS_FILE
from mobile_spinenet.zoo import build_model, model_anchors

SIZE = 128


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding a model with O(1) outputs, and a val set whose ground truth is that
    model's own confident detections (its Keras AP is high, so a broken export shows)."""
    root = tmp_path_factory.mktemp("export")
    make_split(str(root / "images"), "val", 12, seed=3)
    data = read_dataset(str(root / "images"))
    keras.utils.set_random_seed(0)
    model = build_model("spinenet49xxs", image_size=SIZE, num_classes=data.label_map.num_classes)
    randomize_batch_norm(model)
    spread_predictions(model)
    run = root / "run"
    run.mkdir()
    model.save_weights(str(run / WEIGHTS_FILE))
    save_config(load_config("spinenet49xxs", overrides={"image_size": SIZE}), str(run / "config.yaml"))
    data.label_map.save(str(run / "label_map.json"))

    detections = predict_dataset(keras_predictor(model, model_anchors("spinenet49xxs", SIZE)), data, SIZE)
    confident = [d for d in detections if d["score"] >= 0.5 and min(d["bbox"][2:]) >= 4]
    assert len(confident) >= 20, len(confident)
    annotations = json.loads((root / "images" / "annotations.json").read_text())
    annotations["annotations"] = [{"id": i + 1, "image_id": d["image_id"], "category_id": d["category_id"],
                                   "bbox": d["bbox"], "area": d["bbox"][2] * d["bbox"][3], "iscrowd": 0}
                                  for i, d in enumerate(confident)]
    (root / "images" / "annotations.json").write_text(json.dumps(annotations))
    (run / SOURCES_FILE).write_text(json.dumps({"train": str(root / "images"), "val": str(root / "images")}))
    return run


@pytest.fixture(scope="module")
def clipping_run(run_dir, tmp_path_factory):
    """The same weights, decoded as a run imported from Model Garden is: boxes clipped before NMS."""
    import shutil

    clipping = tmp_path_factory.mktemp("clipping") / "run"
    shutil.copytree(run_dir, clipping)
    save_config(replace(load_config(config_file=str(clipping / "config.yaml")), clip_boxes=True),
                str(clipping / "config.yaml"))
    return clipping


@pytest.fixture(scope="module")
def fp32_export(clipping_run, tmp_path_factory):
    """`export --quant fp32` of the clipping run, verified, with what it printed: one conversion
    (a minute on one core) that the fp32 and the android-assets tests both read."""
    import contextlib
    import io
    from types import SimpleNamespace

    out = tmp_path_factory.mktemp("fp32") / "model.tflite"
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main(["export", str(clipping_run), "--quant", "fp32", "--out", str(out)])
    assert code == 0, errors.getvalue()
    return SimpleNamespace(path=out, report=json.loads(open(sidecar_paths(str(out))["report"]).read()),
                           out=printed.getvalue(), err=errors.getvalue())


def test_fp32_export_is_verified_and_written_with_labels_and_report(run_dir, clipping_run, fp32_export, tmp_path,
                                                                   capsys):
    import shutil

    out = tmp_path / "model.tflite"  # a copy: this test takes the labels file away
    shutil.copy(fp32_export.path, out)
    source, copy = sidecar_paths(str(fp32_export.path)), sidecar_paths(str(out))
    for kind in ("labels", "report"):
        shutil.copy(source[kind], copy[kind])
    report = json.loads((tmp_path / "model.json").read_text())
    assert report["ops"]["ops"]["TFLite_Detection_PostProcess"] == 1
    verification = report["verification"]
    assert verification["passed"] and verification["keras_ap"] > 50  # ground truth = its own detections
    assert abs(verification["ap_drop"]) <= 0.1 and verification["agreement"] > 0.95
    assert (tmp_path / "model.labels.txt").read_text().splitlines() == report["labels"] and len(report["labels"]) == 10
    assert "PASSED" in fp32_export.out and out.stat().st_size > 1e6
    # every long stage shows itself: the conversion's elapsed time, a bar per verification pass
    assert "converting to fp32 TFLite (done in" in fp32_export.err
    assert "verifying: Keras model" in fp32_export.err and "verifying: TFLite model" in fp32_export.err
    metadata = read_metadata(out.read_bytes())
    assert metadata["labels"] == report["labels"] and metadata["name"] == "spinenet49xxs"
    assert metadata["description"].startswith("spinenet49xxs RetinaNet detector, 128 px, fp32")
    assert set(metadata["outputs"]) == set(OUTPUT_NAMES) and metadata["outputs_are_tensor_names"]
    assert (metadata["input"], metadata["mean"], metadata["std"]) == ("image", [127.5], [127.5])
    assert metadata["score_threshold"] == pytest.approx(0.05)  # the in-graph op's, for the app
    (tmp_path / "model.labels.txt").unlink()  # android-assets takes the labels from the metadata
    assert main(["android-assets", str(out), "--assets", str(tmp_path / "assets")]) == 0
    assert (tmp_path / "assets" / "model.labels.txt").read_text().splitlines() == report["labels"]
    assert sorted(os.listdir(tmp_path / "assets")) == ["model.labels.txt", "model.tflite"]  # no anchors needed

    # `mobile-spinenet eval` gives the run and its fp32 file the same COCO AP
    data = str(run_dir.parent / "images")
    keras_metrics, _ = evaluate_path(str(clipping_run), data)
    tflite_metrics, detections = evaluate_path(str(out), data)
    assert keras_metrics["AP"] > 0.5 and len(detections) > 20
    assert abs(keras_metrics["AP"] - tflite_metrics["AP"]) < 1e-3 and abs(keras_metrics["AP50"] - tflite_metrics["AP50"]) < 1e-3
    assert main(["eval", str(out), "--data", data, "--json", str(tmp_path / "dets.json")]) == 0
    assert "AP50" in capsys.readouterr().out and len(json.loads((tmp_path / "dets.json").read_text())) == len(detections)


def test_a_broken_conversion_is_rejected_the_previous_file_kept_and_the_broken_one_kept_aside(
        run_dir, tmp_path, monkeypatch, capsys):
    """The reject-or-write step on a file the converter broke (one class-head kernel negated in the
    converted graph only): verification against the Keras model catches it. The int8 form of this
    check (calibration that collapses every range) is the slow test below."""
    from mobile_spinenet.quantization import export

    real_convert = export.convert

    def broken_convert(model, *args, **kwargs):
        layer = next(l for l in model.layers if l.name.startswith("classes") and l.get_weights())
        kept = layer.get_weights()
        layer.set_weights([-kept[0]] + kept[1:])
        try:
            return real_convert(model, *args, **kwargs)
        finally:
            layer.set_weights(kept)

    monkeypatch.setattr(export, "convert", broken_convert)
    out = tmp_path / "model.tflite"
    out.write_bytes(b"the previous good export")
    (tmp_path / "model.json").write_text(json.dumps({"model": "spinenet49xxs", "quant": "fp32", "ops": {}}))
    assert main(["export", str(run_dir), "--quant", "fp32", "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress ticks: the one-line error
    assert "is broken" in last and "model.rejected.tflite" in last
    assert out.read_bytes() == b"the previous good export"
    assert json.loads((tmp_path / "model.json").read_text())["quant"] == "fp32"  # its report untouched too
    assert (tmp_path / "model.rejected.tflite").stat().st_size > 1e5
    assert not json.loads((tmp_path / "model.rejected.json").read_text())["verification"]["passed"]


@pytest.mark.slow
def test_rejected_export_keeps_the_previous_file_and_is_kept_aside(run_dir, tmp_path, capsys):
    gray = tmp_path / "gray"
    source = json.loads((run_dir.parent / "images" / "annotations.json").read_text())
    os.makedirs(gray / "images")
    for image in source["images"]:  # flat grey calibration images: every activation range collapses
        Image.new("RGB", (image["width"], image["height"]), (128, 128, 128)).save(gray / "images" / image["file_name"])
    (gray / "annotations.json").write_text(json.dumps(source))
    out = tmp_path / "model.tflite"
    out.write_bytes(b"the previous good export")
    (tmp_path / "model.json").write_text(json.dumps({"model": "spinenet49xxs", "quant": "int8", "ops": {}}))
    assert main(["export", str(run_dir), "--quant", "int8", "--calib", str(gray), "--calib-steps", "12",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "is broken" in error and "model.rejected.tflite" in error
    assert out.read_bytes() == b"the previous good export"
    assert (tmp_path / "model.rejected.tflite").stat().st_size > 1e5
    rejected = json.loads((tmp_path / "model.rejected.json").read_text())
    assert not rejected["verification"]["passed"]
    # calibrated the default way: the median of the ranges of two batches (the 12 images there are)
    assert rejected["calibration"] == {"method": "median", "images": 12, "batches": 2, "seed": 0, "float_layers": []}
    # (this untrained model's detections hardly depend on the image, so a *correct* int8 file of it
    # fails too; test_training_slow.py shows on a trained model that only the broken one fails)
    # the file is int8 all the same: conversion alone would not have told
    assert rejected["ops"]["float_ops"] == {} and rejected["ops"]["tensor_types"]["int8"] > 500


def test_predict_draws_the_detections_on_the_image(run_dir, tmp_path, capsys):
    image_path = sorted((run_dir.parent / "images" / "images").iterdir())[0]
    out = tmp_path / "drawn"
    assert main(["predict", str(run_dir), str(image_path), "--out", str(out), "--score-threshold", "0.5"]) == 0
    results = json.loads((out / "detections.json").read_text())
    detections = results[0]["detections"]
    assert detections and detections[0]["label"] in json.loads((run_dir / "label_map.json").read_text())["classes"][
        detections[0]["class"]]["name"]
    original = np.asarray(Image.open(image_path).convert("RGB"), np.int16)
    drawn = np.asarray(Image.open(out / image_path.with_suffix(".jpg").name), np.int16)
    assert drawn.shape == original.shape
    x1, y1, x2, y2 = (int(round(v)) for v in detections[0]["box_xyxy"])
    edge = drawn[min(y1, original.shape[0] - 1), x1:x2 + 1] - original[min(y1, original.shape[0] - 1), x1:x2 + 1]
    assert np.abs(edge).max() > 60  # the box's top edge is painted over the image
    assert main(["predict", str(run_dir), str(tmp_path / "nope.jpg"), "--out", str(out)]) == 2
    assert "nope.jpg does not exist" in capsys.readouterr().err
    # two inputs with one file name: two drawn files, each JSON entry pointing at its own
    twin = tmp_path / "elsewhere" / image_path.name
    twin.parent.mkdir()
    twin.write_bytes(image_path.read_bytes())
    both = tmp_path / "both"
    assert main(["predict", str(run_dir), str(image_path), str(twin), "--out", str(both)]) == 0
    entries = json.loads((both / "detections.json").read_text())
    assert [os.path.basename(e["drawn"]) for e in entries] == [image_path.stem + ".jpg", image_path.stem + "-2.jpg"]
    assert all(os.path.isfile(e["drawn"]) for e in entries)
    printed = capsys.readouterr().out
    assert "detections (" in printed and "best:" in printed  # a summary line, not every box


def test_android_assets_copies_model_labels_and_raw_anchors(clipping_run, fp32_export, tmp_path, capsys):
    """A raw-output file and what the app decodes it with; the run clips boxes before NMS, as one
    imported from Model Garden does, and the file's report, `eval` and NAME.nms.txt carry that."""
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD
    from mobile_spinenet.eval.evaluate import load_detector
    from mobile_spinenet.quantization.interpreter import load_interpreter
    from mobile_spinenet.training.runs import open_run

    clipping = clipping_run
    raw = tmp_path / "raw.tflite"
    assert main(["export", str(clipping), "--quant", "fp32", "--nms", "none", "--no-verify", "--out", str(raw)]) == 0
    assert json.loads((tmp_path / "raw.json").read_text())["postprocess"]["clip_size"] == SIZE
    run = open_run(str(clipping))
    images = (np.random.default_rng(5).integers(0, 256, (1, SIZE, SIZE, 3)) - PIXEL_MEAN) / PIXEL_STD
    images = images.astype(np.float32)
    model = run.model()
    want = keras_predictor(model, run.anchors(), run.nms_config())(images)
    got = load_detector(str(raw)).predict(images)  # what `eval FILE` scores
    np.testing.assert_array_equal(got[3], want[3])
    n = int(want[3].min())
    np.testing.assert_allclose(got[0][:, :n], want[0][:, :n], atol=0.05)
    unclipped = keras_predictor(model, run.anchors(), run.nms_config(clip_size=None))(images)[0][:, :n]
    assert np.abs(unclipped - want[0][:, :n]).max() > 0.5  # the clip mattered for these boxes
    # the in-graph op cannot clip: it is given the codes of the clipped boxes, and decodes the same
    got = load_detector(str(fp32_export.path)).predict(images)
    np.testing.assert_array_equal(got[3], want[3])
    np.testing.assert_array_equal(got[2][:, :n], want[2][:, :n])
    np.testing.assert_allclose(got[0][:, :n], want[0][:, :n], atol=0.05)
    assert {"EXP", "LOG"} <= set(fp32_export.report["ops"]["ops"])  # the clip ops
    assets = tmp_path / "assets"
    assert main(["android-assets", str(raw), "--assets", str(assets), "--name", "demo.tflite"]) == 0
    assert (assets / "demo.tflite").read_bytes() == raw.read_bytes()
    labels = (assets / "demo.labels.txt").read_text().splitlines()
    assert labels == json.loads((tmp_path / "raw.json").read_text())["labels"] and len(labels) == 10
    # one anchor line per raw output row, equal to the kit's anchors (what the Java core decodes against)
    anchors = np.loadtxt(assets / "demo.anchors.txt")
    rows = {d["name"]: d["shape"] for d in load_interpreter(str(raw)).get_output_details()}["boxes"][1]
    np.testing.assert_allclose(anchors, model_anchors("spinenet49xxs", SIZE), rtol=1e-5)
    assert anchors.shape == (rows, 4)
    # the post-processing the core decodes with: the kit's defaults and the run's clip
    settings = dict(line.split() for line in (assets / "demo.nms.txt").read_text().splitlines())
    assert settings == {"score_threshold": "0.05", "iou_threshold": "0.5", "max_detections": "100",
                        "pre_nms_top_k": "1000", "clip_size": str(SIZE)}
    (tmp_path / "raw.json").unlink()  # without the export report the anchors cannot be known
    assert main(["android-assets", str(raw), "--assets", str(assets)]) == 2
    assert "raw.json, which is missing" in capsys.readouterr().err
    assert main(["android-assets", str(tmp_path / "missing.tflite"), "--assets", str(assets)]) == 2


@pytest.mark.slow  # two int8 conversions: ~2 min
def test_an_int8_file_of_a_clipping_run_is_the_file_of_the_run_without_the_clip(run_dir, clipping_run, tmp_path,
                                                                                capsys):
    """The clip-and-re-encode ops float files give the in-graph op are left out of int8 files (the
    converter quantized them and wrecked every box). So a clipping run's int8 file is, byte for byte,
    the one of the same weights without the clip. (This fixture's random network fails int8
    verification either way, 92.4 vs 33.1 AP on its own detections: that is post-training
    quantization of random weights, not the clip; trained checkpoints pass, test_demo_checkpoints.)"""
    for run, name in ((run_dir, "plain"), (clipping_run, "clipping")):
        assert main(["export", str(run), "--quant", "int8", "--out", str(tmp_path / f"{name}.tflite"),
                     "--no-verify"]) == 0, capsys.readouterr().err
    assert (tmp_path / "clipping.tflite").read_bytes() == (tmp_path / "plain.tflite").read_bytes()
    assert "LOG" not in json.loads((tmp_path / "clipping.json").read_text())["ops"]["ops"]


def test_an_ssdlite_run_with_smaller_anchors_exports_them_to_every_consumer(tmp_path, capsys):
    """A run trained with --ssd-min-scale decodes over its own anchors everywhere: the export
    report names the setting, and the file's evaluation and the Android anchors follow it."""
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD
    from mobile_spinenet.data.records import LabelMap
    from mobile_spinenet.eval.evaluate import load_detector

    keras.utils.set_random_seed(0)
    model = build_model("mnv3_small_ssdlite", image_size=SIZE, num_classes=3)
    randomize_batch_norm(model)
    spread_predictions(model)
    run = tmp_path / "run"
    run.mkdir()
    model.save_weights(str(run / WEIGHTS_FILE))
    save_config(load_config("mnv3_small_ssdlite", overrides={"image_size": SIZE, "ssd_min_scale": 0.1}),
                str(run / "config.yaml"))
    LabelMap.from_categories([{"id": i + 1, "name": name} for i, name in enumerate("abc")]).save(
        str(run / "label_map.json"))
    raw = tmp_path / "raw.tflite"
    assert main(["export", str(run), "--quant", "fp32", "--nms", "none", "--no-verify", "--out", str(raw)]) == 0, \
        capsys.readouterr().err
    assert json.loads((tmp_path / "raw.json").read_text())["ssd_min_scale"] == 0.1
    assert read_metadata(raw.read_bytes())["description"].startswith("mnv3_small_ssdlite SSDLite detector, 128 px")
    own, default = model_anchors("mnv3_small_ssdlite", SIZE, ssd_min_scale=0.1), model_anchors("mnv3_small_ssdlite", SIZE)
    assert np.abs(own - default).max() > 5  # pixels: the setting matters
    images = (np.random.default_rng(5).integers(0, 256, (1, SIZE, SIZE, 3)) - PIXEL_MEAN) / PIXEL_STD
    images = images.astype(np.float32)
    want = keras_predictor(model, own)(images)
    got = load_detector(str(raw)).predict(images)  # what `eval FILE` scores
    n = int(want[3].min())
    assert n > 0 and np.array_equal(got[3], want[3])
    np.testing.assert_allclose(got[0][:, :n], want[0][:, :n], atol=0.05)
    assets = tmp_path / "assets"
    assert main(["android-assets", str(raw), "--assets", str(assets), "--name", "ssd.tflite"]) == 0
    np.testing.assert_allclose(np.loadtxt(assets / "ssd.anchors.txt"), own, rtol=1e-5)


def test_an_export_has_the_same_bytes_whenever_it_is_made(monkeypatch):
    """The labels zip appended to the model carried the export's time stamp, so two exports of the
    same run differed in two bytes (found comparing exports made before and after a refactor)."""
    import time
    import zipfile

    from test_mediapipe import LABELS, colour_cells

    from mobile_spinenet.quantization.export import ExportOptions, convert
    from mobile_spinenet.quantization.metadata import attach_metadata

    model, anchors = colour_cells()
    flatbuffer = convert(model, anchors, ExportOptions(quant="fp32"))
    now = attach_metadata(flatbuffer, "colour cells", "d", LABELS)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3 * 86400 + 7)  # three days and seven seconds later
    assert attach_metadata(flatbuffer, "colour cells", "d", LABELS) == now
    with zipfile.ZipFile(__import__("io").BytesIO(now)) as archive:
        assert archive.read("labels.txt").decode().splitlines() == LABELS


def test_the_score_threshold_of_an_export_is_in_its_metadata_for_the_app():
    from test_mediapipe import LABELS, colour_cells

    from mobile_spinenet.quantization.export import ExportOptions, convert
    from mobile_spinenet.quantization.metadata import attach_metadata

    model, anchors = colour_cells()
    flatbuffer = convert(model, anchors, ExportOptions(quant="fp32"))
    phone = read_metadata(attach_metadata(flatbuffer, "colour cells", "d", LABELS, score_threshold=0.3))
    assert phone["score_threshold"] == pytest.approx(0.3) and phone["labels"] == LABELS
    assert read_metadata(attach_metadata(flatbuffer, "colour cells", "d", LABELS))["score_threshold"] is None
    with pytest.raises(SystemExit):
        main(["export", "run", "--out", "x.tflite", "--score-threshold", "1.5"])


def test_metadata_scalars_left_out_by_a_writer_read_as_the_schema_default():
    # flatbuffer writers may omit a field equal to its default (a process unit's NONE type, a
    # threshold of 0); reading one raised a TypeError before
    import flatbuffers

    from mobile_spinenet.quantization.metadata import _scalar

    builder = flatbuffers.Builder(64)
    builder.StartObject(2)
    builder.Finish(builder.EndObject())
    data = builder.Output()
    table = flatbuffers.table.Table(bytearray(data), flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    assert _scalar(table, 0, flatbuffers.number_types.Uint8Flags, 0) == 0
    assert _scalar(table, 1, flatbuffers.number_types.Float32Flags, 0.0) == 0.0


def test_int8_sensitivity_refuses_a_group_that_matches_no_layer_before_any_work(run_dir, tmp_path, capsys):
    code = main(["bench", "int8-sensitivity", str(run_dir), "--group", "head=heads*", "--out", str(tmp_path / "x.json")])
    assert code == 2 and "'heads*' matches no layer" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.json")  # refused before any work


@pytest.mark.slow  # three int8 conversions (~5 min on 2 cores)
def test_int8_sensitivity_scores_each_group_left_float_and_resumes_without_redoing_one(run_dir, tmp_path, capsys):
    from mobile_spinenet.eval.int8_sensitivity import (ALL_INT8, FLOAT, SensitivityOptions, format_sensitivity,
                                                       int8_sensitivity)

    out = str(tmp_path / "sensitivity.json")
    options = SensitivityOptions(run=str(run_dir), out=out, groups=(("head", ("boxes*", "classes*")),),
                                 calib_images=16)
    said = []
    record = int8_sensitivity(options, progress=said.append)
    rows = {row["group"]: row for row in record["rows"]}
    assert list(rows) == [FLOAT, ALL_INT8, "head"]
    assert rows[ALL_INT8]["float_layers"] == 0 and 0 < rows["head"]["float_layers"] < rows[FLOAT]["float_layers"]
    assert rows[FLOAT]["AP"] > 50  # the val set is this model's own confident detections
    assert json.loads(open(out).read()) == record
    assert "| head | boxes*, classes* |" in format_sensitivity(record)
    said.clear()
    assert int8_sensitivity(options, progress=said.append) == record and said == []  # all done: nothing rerun
    with pytest.raises(ValueError, match="other settings"):
        int8_sensitivity(replace(options, calib_seed=1))


def test_android_assets_names_a_classifier_file_as_one_the_detector_app_cannot_run(tmp_path, capsys):
    # it was told to "export with mobile-spinenet", which is how a classifier file is made too
    from mobile_spinenet.backend import keras, tf

    inputs = keras.Input((32, 32, 3), batch_size=1)
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    model = keras.Model(inputs, logits)
    function = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, 32, 32, 3], tf.float32))
    path = tmp_path / "classes.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([function], model).convert())
    assert main(["android-assets", str(path), "--assets", str(tmp_path / "assets")]) == 2
    assert f"{path} is an image classifier (one output of shape [1, 10])" in capsys.readouterr().err
    assert not (tmp_path / "assets").exists()
