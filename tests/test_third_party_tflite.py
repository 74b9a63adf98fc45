"""Files the kit did not make: a detector shaped like the TF Object Detection API's (uint8
input, TFLite_Detection_PostProcess in the graph, outputs named ``TFLite_Detection_PostProcess:0..3``,
no signature, no metadata) works in predict, eval and benchmark, fed the pixels it expects."""
import json

import numpy as np
import pytest

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.cli import main
from mobile_spinenet.data.demo import make_split
from mobile_spinenet.data.images import letterbox
from mobile_spinenet.postprocess import NMSConfig
from mobile_spinenet.quantization.interpreter import feed_of, load_interpreter, run
from mobile_spinenet.quantization.postprocess_op import detection_postprocess_fn, normalized_center_anchors

SIZE, GRID, CLASSES = 64, 4, 3
LABELS = ["t-shirt", "Trouser", "pullover"]  # three of the demo data's category names (matched ignoring case)


def _od_api_style(flatbuffer: bytes) -> bytes:
    """Drop the signature and rename the outputs the way TF OD API files name them."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    model.signatureDefs = []
    subgraph = model.subgraphs[0]
    op = next(o for o in subgraph.operators
              if model.operatorCodes[o.opcodeIndex].customCode in (b"TFLite_Detection_PostProcess",
                                                                    "TFLite_Detection_PostProcess"))
    for k, tensor in enumerate(op.outputs):
        subgraph.tensors[tensor].name = ("TFLite_Detection_PostProcess" + (f":{k}" if k else "")).encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("third_party")
    keras.utils.set_random_seed(3)
    step = SIZE // GRID
    corners = np.array([[y * step, x * step, (y + 1) * step, (x + 1) * step]
                        for y in range(GRID) for x in range(GRID)], np.float32)
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=1)
    features = keras.layers.Conv2D(8, step, strides=step, activation="relu")(inputs)
    codes = keras.layers.Reshape((GRID * GRID, 4))(keras.layers.Conv2D(4, 1)(features))
    scores = keras.layers.Reshape((GRID * GRID, CLASSES))(keras.layers.Conv2D(CLASSES, 1, activation="sigmoid")(features))
    model = keras.Model(inputs, [codes, scores])
    postprocess = detection_postprocess_fn(CLASSES, NMSConfig(score_threshold=0.05, max_detections=10))
    anchors = tf.constant(normalized_center_anchors(corners, SIZE))

    @tf.function
    def detector(image):
        box_codes, class_scores = model(image)
        return postprocess(box_codes, class_scores, anchors)

    function = detector.get_concrete_function(tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32))

    def convert(quantized: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
        converter.allow_custom_ops = True
        if quantized:
            rng = np.random.default_rng(0)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)]
                                                        for _ in range(20))
            converter.inference_input_type = tf.uint8
        return converter.convert()

    paths = {"float": root / "float.tflite", "uint8": root / "ssd_uint8.tflite"}
    paths["float"].write_bytes(_od_api_style(convert(False)))
    paths["uint8"].write_bytes(_od_api_style(convert(True)))
    make_split(str(root / "val"), "val", 3, seed=4)
    (root / "labels.txt").write_text("".join(n + "\n" for n in LABELS))
    return {**{k: str(v) for k, v in paths.items()}, "root": root}


def test_outputs_are_found_by_the_op_and_raw_pixels_are_fed_to_a_uint8_file(files):
    interpreter = load_interpreter(files["uint8"])
    assert interpreter.get_signature_list() == {}
    assert sorted(d["name"] for d in interpreter.get_output_details())[0] == "TFLite_Detection_PostProcess"
    feed = feed_of(interpreter)
    assert feed.raw_pixels and feed.dtype == np.uint8
    white = np.ones((1, SIZE, SIZE, 3), np.float32)  # the kit's [-1, 1] preprocessing of a white image
    assert feed(white).min() == 255 and feed(-white).max() == 0
    image = letterbox(str(sorted((files["root"] / "val" / "images").iterdir())[0]), SIZE)
    outputs = run(interpreter, image)
    assert set(outputs) == {"location", "category", "score", "number of detections"}


def test_a_uint8_file_gives_its_float_twin_detections(files):
    image = letterbox(str(sorted((files["root"] / "val" / "images").iterdir())[0]), SIZE)
    quantized = run(load_interpreter(files["uint8"]), image)
    reference = run(load_interpreter(files["float"]), image)
    assert int(reference["number of detections"][0]) >= 3
    assert _matched(reference, quantized) == 3
    # the old feed, the [-1, 1] image cast to uint8 (values 0 and 1, an almost black image), is far off:
    interpreter = load_interpreter(files["uint8"])
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], image.astype(np.uint8))
    interpreter.invoke()
    by_name = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    cast = {"location": by_name["TFLite_Detection_PostProcess"], "category": by_name["TFLite_Detection_PostProcess:1"],
            "score": by_name["TFLite_Detection_PostProcess:2"]}
    assert _matched(reference, cast) < 3


def _matched(reference, candidate, top=3, tolerance=0.06):
    """How many of ``reference``'s top detections ``candidate`` has too (same class, box and
    score within ``tolerance``); near-tied scores may come out in another order."""
    found = 0
    for k in range(top):
        close = ((candidate["category"][0] == reference["category"][0, k])
                 & (np.abs(candidate["location"][0] - reference["location"][0, k]).max(axis=1) <= tolerance)
                 & (np.abs(candidate["score"][0] - reference["score"][0, k]) <= tolerance))
        found += bool(close.any())
    return found


def test_predict_eval_and_benchmark_take_the_file(files, tmp_path, capsys):
    image = str(sorted((files["root"] / "val" / "images").iterdir())[0])
    out = tmp_path / "drawn"
    assert main(["predict", files["uint8"], image, "--out", str(out), "--score-threshold", "0.05",
                 "--labels", str(files["root"] / "labels.txt")]) == 0
    detections = json.loads((out / "detections.json").read_text())[0]["detections"]
    assert detections and {d["label"] for d in detections} <= set(LABELS)
    capsys.readouterr()
    assert main(["eval", files["uint8"], "--data", str(files["root"] / "val"),
                 "--labels", str(files["root"] / "labels.txt")]) == 0
    assert "AP" in capsys.readouterr().out
    assert main(["benchmark", files["uint8"], "--threads", "1", "--runs", "3", "--warmup", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["end_to_end_median_ms"] > 0


def test_labels_that_match_no_dataset_category_are_a_clear_error(files, tmp_path, capsys):
    labels = tmp_path / "other.txt"
    labels.write_text("car\nbus\nbike\n")
    assert main(["eval", files["uint8"], "--data", str(files["root"] / "val"), "--labels", str(labels)]) == 2
    assert "none of the detector's 3 labels (car, bus, bike" in capsys.readouterr().err
