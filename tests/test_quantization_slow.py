"""Slow: QAT applies to every mobile id and both SSDLite baselines; fp16 and dynamic-range exports
of spinenet49xxs convert, load and run (fp32 and int8 are in the fast suite)."""
import numpy as np
import pytest
from conftest import randomize_batch_norm

from mobile_spinenet.backend import keras
from mobile_spinenet.quantization.export import ExportOptions, convert, op_report
from mobile_spinenet.quantization.interpreter import load_interpreter, run
from mobile_spinenet.quantization.postprocess_op import OUTPUT_NAMES
from mobile_spinenet.quantization.qat import calibrate_ranges, quantizable_model, quantize_aware
from mobile_spinenet.zoo import build_model, model_anchors

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model_id", ["spinenet49xxs", "spinenet49xs", "spinenet49s_mobile", "spinenet49_mobile",
                                      "mnv3_small_ssdlite", "mnv3_large_ssdlite"])
def test_qat_applies_to_every_mobile_model(model_id):
    size = 128
    model = build_model(model_id, image_size=size, num_classes=4)
    qat = quantize_aware(quantizable_model(model_id, model, image_size=size, num_classes=4))
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    calibrate_ranges(qat, [x])
    outputs = qat(x, training=False)
    anchors = len(model_anchors(model_id, size))
    assert outputs["classes"].shape == (2, anchors, 4) and np.isfinite(outputs["boxes"].numpy()).all()


@pytest.mark.parametrize("quant", ["fp16", "dynamic"])
def test_fp16_and_dynamic_exports_convert_load_and_run(quant, images):
    keras.utils.set_random_seed(0)
    model = build_model("spinenet49xxs", image_size=128, num_classes=5)
    randomize_batch_norm(model)
    flatbuffer = convert(model, model_anchors("spinenet49xxs", 128), ExportOptions(quant))
    report = op_report(flatbuffer)
    weight_type = {"fp16": "float16", "dynamic": "int8"}[quant]
    assert report["tensor_types"].get(weight_type, 0) >= 50, report["tensor_types"]  # conv weights stored smaller
    assert report["size_bytes"] < 0.7 * 3.6e6  # the fp32 file of this model is 3.6 MB
    got = run(load_interpreter(model_content=flatbuffer), images(128))
    assert set(got) == set(OUTPUT_NAMES) and got["location"].shape == (1, 100, 4)
