import contextlib

import numpy as np
import pytest
from conftest import randomize_batch_norm, spread_predictions

from mobile_spinenet.backend import keras
from mobile_spinenet.io_utils import write_atomically
from mobile_spinenet.quantization.export import ExportOptions, convert
from mobile_spinenet.quantization.interpreter import interpreter_class, load_interpreter, run
from mobile_spinenet.zoo import build_model


def test_interpreter_is_ai_edge_litert():
    assert interpreter_class().__module__.startswith("ai_edge_litert")


# SpineNet's fp32 file is checked against Keras by test_export on every run (same AP, > 95% agreement)
@pytest.mark.parametrize("model_id", [pytest.param("spinenet49xxs", marks=pytest.mark.slow), "mnv3_small_ssdlite"])
def test_float_tflite_matches_keras(model_id, images, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(model_id, image_size=128, num_classes=5)
    randomize_batch_norm(model)
    spread_predictions(model)
    path = tmp_path / f"{model_id}.tflite"
    write_atomically(str(path), convert(model, None, ExportOptions("fp32", nms="none")))
    interpreter = load_interpreter(str(path))
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 128, 128, 3]
    x = images(128)
    got = run(interpreter, x)
    want = model(x, training=False)
    assert set(got) == {"classes", "boxes"}
    for name in got:
        reference = want[name].numpy()
        assert reference.std() > 0.05  # outputs carry signal, so agreement means something
        # float32 sums in another order through ~100 layers: agreement within 1e-4 of the
        # output's scale (a wrong op or layout is off by O(1) of it)
        assert np.abs(got[name] - reference).max() < 1e-4 * np.abs(reference).max(), name


def test_the_lite_variant_converts_without_swish_or_squeeze_excite_and_matches_keras(images, tmp_path):
    """spinenet49xs_lite (widths in multiples of 8, no squeeze-excite, ReLU6) as a file: none of the
    LOGISTIC (swish, SE gates) and MEAN (SE pooling) ops that take a third of SpineNet-49XS's
    time (docs/benchmarks.md), and its Keras model's outputs."""
    from mobile_spinenet.quantization.export import op_report

    keras.utils.set_random_seed(0)
    model = build_model("spinenet49xs_lite", image_size=128, num_classes=5)
    randomize_batch_norm(model)
    spread_predictions(model)
    flatbuffer = convert(model, None, ExportOptions("fp32", nms="none"))
    ops = op_report(flatbuffer)["ops"]
    assert "LOGISTIC" not in ops and "MEAN" not in ops and ops["DEPTHWISE_CONV_2D"] > 50, ops
    path = tmp_path / "lite.tflite"
    write_atomically(str(path), flatbuffer)
    x = images(128)
    got, want = run(load_interpreter(str(path)), x), model(x, training=False)
    for name in ("classes", "boxes"):
        reference = want[name].numpy()
        assert reference.std() > 0.05
        assert np.abs(got[name] - reference).max() < 1e-4 * np.abs(reference).max(), name


def test_the_converter_saves_no_gradient_functions_and_the_file_is_the_same(monkeypatch):
    """The converter's temporary SavedModel leaves out gradient functions (a third of a conversion's
    time); the file is byte for byte the one made with them, in-graph post-processing included."""
    from tensorflow.lite.python import lite
    from tensorflow.python.saved_model import save as saved_model_save
    from test_mediapipe import colour_cells

    from mobile_spinenet.quantization import export

    model, anchors = colour_cells()
    options = ExportOptions(quant="fp32")
    real_options, real_save, seen = lite._save_options, saved_model_save.save, []

    def spy(*args, **kwargs):
        seen.append(kwargs["options"].experimental_custom_gradients)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(saved_model_save, "save", spy)
    fast = convert(model, anchors, options)
    assert seen == [False] and lite._save_options is real_options  # put back afterwards
    monkeypatch.setattr(export, "saved_without_gradients", contextlib.nullcontext)
    slow = convert(model, anchors, options)
    assert seen == [False, True]  # TensorFlow's default, without the kit's context
    assert fast == slow
