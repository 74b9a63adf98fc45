"""Files made by other toolkits: `benchmark` feeds any image input, NHWC or NCHW (channels first,
as Ultralytics' LiteRT exports take it), float or integer; an input it cannot tell the values of is
timed with raw pixels and said so."""
import json

import numpy as np
import pytest

from mobile_spinenet.cli import main
from mobile_spinenet.quantization.interpreter import input_feed, input_layout


def _tflite(path, shape, int8=False):
    from mobile_spinenet.backend import tf

    kernel = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def net(x):
        if shape[1] == 3:  # channels first, as a PyTorch-born file
            x = tf.transpose(x, [0, 2, 3, 1])
        return {"features": tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.random.default_rng(k).uniform(0, 1, shape).astype(np.float32)]
                                                    for k in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def test_input_layout_reads_nhwc_and_nchw_and_names_any_other_shape():
    assert input_layout({"shape": [1, 256, 256, 3]}) == ("NHWC", 256)
    assert input_layout({"shape": [1, 3, 640, 640]}) == ("NCHW", 640)
    with pytest.raises(ValueError, match=r"x.tflite takes input of shape \[1, 3, 640, 480\]"):
        input_layout({"shape": [1, 3, 640, 480]}, "x.tflite")
    image = np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    fed = input_feed({"dtype": np.float32, "shape": [1, 3, 8, 8]}, (0.0, 255.0))(image)  # Ultralytics: pixels / 255
    assert fed.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(fed[0, 1], (image[0, :, :, 1] * 127.5 + 127.5) / 255.0, atol=1e-6)


def test_benchmark_times_nchw_float_and_integer_files_without_metadata(tmp_path, capsys):
    nchw = _tflite(tmp_path / "nchw.tflite", [1, 3, 32, 32])
    int8 = _tflite(tmp_path / "int8.tflite", [1, 32, 32, 3], int8=True)
    assert main(["benchmark", str(nchw), "--threads", "1", "--runs", "3", "--warmup", "1", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["input_layout"] == "NCHW" and result["median_ms"] > 0 and "input_note" not in result
    assert main(["benchmark", str(int8), "--threads", "1", "--runs", "3", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: " in out and "int8 input and has no normalisation metadata" in out and "raw pixel values" in out


def _ultralytics_file(path, rows, names=None, size=64):
    """A stand-in for an Ultralytics LiteRT export: NCHW float input, one output that is the given
    ``rows`` (any image), and Ultralytics' appended metadata.json."""
    import zipfile

    from mobile_spinenet.backend import tf

    constant = tf.constant(np.asarray(rows, np.float32)[None])

    @tf.function(input_signature=[tf.TensorSpec([1, 3, size, size], tf.float32)])
    def net(x):
        return {"output0": constant * (1.0 + 0.0 * tf.reduce_mean(x))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    path.write_bytes(converter.convert())
    if names is not None:
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("metadata.json", json.dumps({"task": "detect", "imgsz": [size, size], "stride": 32,
                                                          "names": {str(k): n for k, n in enumerate(names)}}))
    return path


def _greedy_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.05, keep=100):
    """A NumPy reference: per class, greedy NMS; all classes' survivors, best first."""
    found = []
    for c in range(scores.shape[1]):
        order = [i for i in np.argsort(-scores[:, c], kind="stable") if scores[i, c] >= score_threshold]
        kept = []
        for i in order:
            y0, x0, y1, x1 = boxes[i]
            ok = True
            for j in kept:
                b0, a0, b1, a1 = boxes[j]
                inter = max(0, min(y1, b1) - max(y0, b0)) * max(0, min(x1, a1) - max(x0, a0))
                union = (y1 - y0) * (x1 - x0) + (b1 - b0) * (a1 - a0) - inter
                if inter / union > iou_threshold:
                    ok = False
            if ok:
                kept.append(i)
        found += [(scores[i, c], c, boxes[i]) for i in kept]
    found.sort(key=lambda f: -f[0])
    return found[:keep]


def test_ultralytics_raw_and_end_to_end_outputs_decode_as_a_numpy_reference(tmp_path):
    from mobile_spinenet.eval.evaluate import load_detector

    rng = np.random.default_rng(3)
    n, k, size = 40, 3, 64
    centres = rng.uniform(0.2, 0.8, (2, n))
    sides = rng.uniform(0.05, 0.3, (2, n))
    scores = rng.uniform(0, 1, (k, n)) ** 3
    raw = _ultralytics_file(tmp_path / "yolo11n.tflite", np.concatenate([centres, sides, scores]), ["a", "b", "c"])
    detector = load_detector(str(raw))
    assert detector.names == ["a", "b", "c"] and detector.resize == "letterbox" and detector.image_size == size
    image = np.zeros([1, size, size, 3], np.float32)
    boxes, got_scores, classes, count = detector.predict(image)
    cx, cy, w, h = np.concatenate([centres, sides]) * size
    reference = _greedy_nms(np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1), scores.T)
    assert int(count[0]) == len(reference) > 5
    for d, (score, c, box) in enumerate(reference):
        assert got_scores[0, d] == pytest.approx(score, abs=1e-6) and classes[0, d] == c
        np.testing.assert_allclose(boxes[0, d], box, atol=1e-3)
    # YOLO26 / YOLOv10: NMS-free, x1 y1 x2 y2 score class, normalised
    rows = np.concatenate([rng.uniform(0, 0.5, (30, 2)), rng.uniform(0.5, 1, (30, 2)), rng.uniform(0, 1, (30, 1)),
                           rng.integers(0, k, (30, 1))], axis=1)
    end2end = _ultralytics_file(tmp_path / "yolo26n.tflite", rows, ["a", "b", "c"])
    boxes, got_scores, classes, count = load_detector(str(end2end)).predict(image)
    kept = rows[rows[:, 4] >= 0.05]
    kept = kept[np.argsort(-kept[:, 4], kind="stable")]
    assert int(count[0]) == len(kept)
    np.testing.assert_allclose(boxes[0, :len(kept)], kept[:, [1, 0, 3, 2]] * size, atol=1e-4)
    np.testing.assert_array_equal(classes[0, :len(kept)], kept[:, 5].astype(int))


def test_eval_and_predict_take_an_ultralytics_file_and_name_an_unknown_output(tmp_path, capsys):
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset

    make_split(str(tmp_path / "val"), "val", 3, seed=9)
    names = read_dataset(str(tmp_path / "val")).label_map.names
    rows = np.zeros([4 + len(names), 50], np.float32)
    rows[:4] = 0.5
    rows[4] = 0.9  # one confident box of the first class in the middle of every image
    model = _ultralytics_file(tmp_path / "yolo.tflite", rows, names, size=96)
    assert main(["eval", str(model), "--data", str(tmp_path / "val")]) == 0
    assert "AP" in capsys.readouterr().out
    image = sorted((tmp_path / "val" / "images").iterdir())[0]
    assert main(["predict", str(model), str(image), "--out", str(tmp_path / "drawn")]) == 0
    [result] = json.loads((tmp_path / "drawn" / "detections.json").read_text())
    first = result["detections"][0]
    assert first["label"] == names[0] and first["score"] == pytest.approx(0.9)
    # the box is the middle quarter of the 96 px input, mapped back to the image as the kit's own files are
    assert len(result["detections"]) == 1
    other = _tflite(tmp_path / "features.tflite", [1, 3, 32, 32])  # a feature map: no detector format
    assert main(["eval", str(other), "--data", str(tmp_path / "val")]) == 2
    assert "is no Ultralytics export ([1, 4+K, N] or [1, N, 6]): cannot decode its boxes" in capsys.readouterr().err


def test_a_non_image_input_is_fed_as_given():
    """`run` feeds any array to a float input of another shape (a feature map [1, 16, 16, 8]): the
    layout check is for images only (it refused such a file in tests/test_quantization.py)."""
    feed = input_feed({"dtype": np.float32, "shape": [1, 16, 16, 8]}, None)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 8)).astype(np.float32)
    np.testing.assert_array_equal(feed(x), x)
