"""What a user sees first: no CUDA noise on a CPU machine (and real errors still shown), a
verdict that says when agreement could not be checked, help that states every default, and
input tensors fed the values they expect or refused."""
import os
import subprocess
import sys

import numpy as np
import pytest

from mobile_spinenet.backend import IMPORT_NOISE_LINES, no_gpu_driver
from mobile_spinenet.quantization.interpreter import InputFeed, input_feed
from mobile_spinenet.quantization.verify import CONFIDENT_SCORE, DEFAULT_MAX_AP_DROP, Verification

ENV = {k: v for k, v in os.environ.items() if k != "MOBILE_SPINENET_SHOW_CUDA_PROBE"}


@pytest.mark.skipif(not no_gpu_driver(), reason="a GPU driver is loaded: the probe is real information there")
def test_no_cuda_probe_noise_on_a_machine_without_a_gpu_driver():
    script = "from mobile_spinenet.backend import tf; print(int((tf.constant(1) + 1).numpy()))"
    quiet = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "2"
    assert "cuInit" not in quiet.stderr and "cudart_stub" not in quiet.stderr, quiet.stderr
    shown = subprocess.run([sys.executable, "-c", script], env={**ENV, "MOBILE_SPINENET_SHOW_CUDA_PROBE": "1"},
                           capture_output=True, text=True, timeout=300)
    assert "cuInit" in shown.stderr  # the probe is really there, and the switch shows it
    # The kit turns oneDNN on (backend.py); TensorFlow's note saying so is shown only with the switch.
    assert "oneDNN custom operations are on" in shown.stderr and "oneDNN" not in quiet.stderr


def test_the_stderr_filter_replays_every_line_it_does_not_know():
    script = r"""
import os, re, sys
from mobile_spinenet.backend import IMPORT_NOISE_LINES, stderr_without
with stderr_without(IMPORT_NOISE_LINES):
    os.write(2, b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n")
    os.write(2, b"E0000 00:00:1.0 1 real_op.cc:10] a real problem\n")
    print("a Python warning", file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "a real problem" in result.stderr and "a Python warning" in result.stderr
    assert "cuInit" not in result.stderr
    assert IMPORT_NOISE_LINES.search("I0000 00:00 1 cudart_stub.cc:31] Could not find cuda drivers on your machine")
    assert not IMPORT_NOISE_LINES.search("E0000 00:00 1 cuda_platform.cc:52] some other CUDA failure")


def _verification(agreement, require=False, confident=0):
    return Verification(images=20, keras_ap=0.8, tflite_ap=0.52, keras_ap50=2.0, tflite_ap50=1.5,
                        confident_detections=confident, agreement=agreement, score_error=None if agreement is None
                        else 0.01, max_ap_drop=2.0, min_agreement=0.5, require_agreement=require)


def test_a_pass_without_an_agreement_check_says_so_and_can_be_made_a_failure():
    unchecked = _verification(None)
    assert unchecked.problems == []
    summary = unchecked.summary()
    assert "PASSED on AP alone: detection agreement could not be checked" in summary
    assert f"no detection scoring {CONFIDENT_SCORE:g} or more on these 20 images" in summary
    assert "--require-agreement" in summary
    assert unchecked.to_dict()["agreement_checked"] is False
    required = _verification(None, require=True)
    assert required.problems and "--require-agreement is set" in required.problems[0]
    assert "FAILED" in required.summary()
    checked = _verification(0.9, confident=40)
    assert checked.summary().endswith("PASSED") and checked.to_dict()["agreement_checked"] is True


def test_export_help_states_the_float_and_the_qat_int8_defaults(capsys):
    from mobile_spinenet.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{DEFAULT_MAX_AP_DROP['int8']:g} int8 from a float run" in text
    assert f"{DEFAULT_MAX_AP_DROP['int8-qat']:g} int8 from a QAT run" in text
    assert "--require-agreement" in text


def test_input_feed_rules():
    kit = np.array([[[[-1.0, 0.0, 1.0]]]], np.float32)  # pixels 0, 127.5, 255
    # the kit's own float files: the image as it is
    np.testing.assert_array_equal(input_feed({"dtype": np.float32}, None)(kit), kit)
    # a float file whose metadata says (pixel - 0) / 255
    np.testing.assert_allclose(input_feed({"dtype": np.float32}, (0.0, 255.0))(kit), [[[[0.0, 0.5, 1.0]]]], atol=1e-6)
    # uint8 without metadata (TF OD API files): raw pixels
    raw = input_feed({"dtype": np.uint8, "quantization": (0.0078125, 128)}, None)
    assert raw.raw_pixels and raw(kit).tolist() == [[[[0, 128, 255]]]]
    # the kit's uint8 export: quantization inverts its metadata normalisation -> raw pixels
    assert input_feed({"dtype": np.uint8, "quantization": (1 / 127.5, 128)}, (127.5, 127.5)).raw_pixels
    # uint8 whose quantization does not invert the normalisation: quantized normalised values
    other = input_feed({"dtype": np.uint8, "quantization": (0.02, 100)}, (127.5, 127.5))
    assert not other.raw_pixels and other(kit).tolist() == [[[[50, 100, 150]]]]
    with pytest.raises(ValueError, match="int8 input and has no normalisation metadata"):
        input_feed({"dtype": np.int8, "quantization": (0.01, 0)}, None, "x.tflite")
    with pytest.raises(ValueError, match="bool input"):
        input_feed({"dtype": np.bool_}, None)
    assert isinstance(raw, InputFeed)
