"""`benchmark --profile`: each op of a .tflite file cut out as a one-op model computes what it
computes inside the file, and the profile counts ops and multiply-adds as the file has them."""
import json
import sys

import numpy as np

from mobile_spinenet.backend import keras, tf


def _tiny_tflite():
    inputs = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)  # 16*16*8*3*3*3 multiply-adds
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)  # 16*16*8*3*3
    out = keras.layers.Add()([x, keras.activations.sigmoid(y)])
    model = keras.Model(inputs, out)
    function = tf.function(lambda image: model(image)).get_concrete_function(tf.TensorSpec([1, 16, 16, 3]))
    return tf.lite.TFLiteConverter.from_concrete_functions([function], model).convert()


def test_a_one_op_model_computes_what_the_op_computes_inside_the_file(tmp_path):
    from mobile_spinenet.eval.op_profile import one_op_models
    from mobile_spinenet.quantization.interpreter import interpreter_class

    flatbuffer = _tiny_tflite()
    cls = interpreter_class()
    resolver = sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # every op a node
    whole = cls(model_content=flatbuffer, experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=resolver)
    whole.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    whole.set_tensor(whole.get_input_details()[0]["index"], x)
    whole.invoke()
    ops = whole._get_ops_details()
    names = {d["index"]: d["name"] for d in whole.get_tensor_details()}
    models = one_op_models(flatbuffer)
    assert [m[1] for m in models] == [op["op_name"] for op in ops]
    for (index, op_type, shape, macs, kind, content), op in zip(models, ops):
        alone = cls(model_content=content)
        alone.allocate_tensors()
        inputs = {d["name"]: d["index"] for d in alone.get_input_details()}
        assert inputs, op_type
        for t in op["inputs"]:  # its non-constant inputs, given what they were inside the file
            if t >= 0 and names[t] in inputs:
                alone.set_tensor(inputs[names[t]], whole.get_tensor(t))
        alone.invoke()
        got = alone.get_tensor(alone.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, whole.get_tensor(op["outputs"][0]), rtol=1e-5, atol=1e-6, err_msg=op_type)
        expected = {"CONV_2D": 16 * 16 * 8 * 27, "DEPTHWISE_CONV_2D": 16 * 16 * 8 * 9}.get(op_type, 0)
        assert macs == expected, op_type


def test_the_profile_counts_every_op_and_prints_a_table(tmp_path, capsys):
    from mobile_spinenet.cli import main

    path = tmp_path / "tiny.tflite"
    path.write_bytes(_tiny_tflite())
    assert main(["benchmark", str(path), "--profile", "--threads", "1", "--runs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "| CONV_2D | 1 |" in printed and "| DEPTHWISE_CONV_2D | 1 |" in printed and "| ADD | 1 |" in printed
    assert "whole file" in printed and "sum of its 4 ops alone" in printed
    # the convolutions by kind: the 3x3 conv on a 16x16 map, the depthwise conv's 8 channels
    assert "| CONV_2D 3x3 | 1 |" in printed and "| DEPTHWISE_CONV_2D 3x3, channels % 8 = 0 | 1 |" in printed
    # --json: the same numbers, as JSON (the flatbuffer's NumPy shapes once made it raise)
    assert main(["benchmark", str(path), "--profile", "--threads", "1", "--runs", "3", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["ops"] == 4 and result["top"][0]["output_shape"] == [1, 16, 16, 8]
    assert {row["kind"] for row in result["by_kind"]} >= {"CONV_2D 3x3", "ADD"}
    assert main(["benchmark", str(tmp_path / "missing.tflite"), "--profile"]) == 2


def test_op_kinds_split_convolutions_by_kernel_small_maps_and_channel_multiples():
    from mobile_spinenet.eval.op_profile import op_kind

    assert op_kind("CONV_2D", (64, 1, 1, 32), (1, 32, 32, 64)) == "CONV_2D 1x1"
    assert op_kind("CONV_2D", (64, 1, 1, 32), (1, 2, 2, 64)) == "CONV_2D 1x1, map <= 4x4"  # P7 at 256 px
    assert op_kind("CONV_2D", (64, 3, 3, 32), (1, 4, 4, 64)) == "CONV_2D 3x3, map <= 4x4"
    assert op_kind("DEPTHWISE_CONV_2D", (1, 3, 3, 67), (1, 8, 8, 67)) == "DEPTHWISE_CONV_2D 3x3, channels % 8 != 0"
    assert op_kind("DEPTHWISE_CONV_2D", (1, 5, 5, 64), (1, 8, 8, 64)) == "DEPTHWISE_CONV_2D 5x5, channels % 8 = 0"
    assert op_kind("ADD", (), (1, 8, 8, 64)) == "ADD"
