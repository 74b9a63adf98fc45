"""TFLite export: fp32, fp16, dynamic-range and full-int8 files, with detection
post-processing in the graph (``--nms tflite``) or raw outputs (``--nms none``).

Every conversion starts from a concrete function with a static ``[1, H, W, 3]`` float input in
[-1, 1] (a dynamic batch adds SHAPE/STRIDED_SLICE ops that keep XNNPACK from taking the graph).
int8 files are converted from the quantizable form of the model (head convs unrolled per level,
so BN folds into them): from a float run with a representative dataset (PTQ), from a QAT run
with its learned ranges.
"""
from __future__ import annotations

import contextlib
import functools
import os
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.counting import inference_function
from mobile_spinenet.postprocess import NMSConfig
from mobile_spinenet.quantization.postprocess_op import (OUTPUT_NAMES, detection_postprocess_fn,
                                                         normalized_center_anchors)

QUANT_TYPES = ("fp32", "fp16", "dynamic", "int8")


@dataclass(frozen=True)
class ExportOptions:
    """How a model becomes a ``.tflite`` file."""

    quant: str = "fp32"
    nms: str = "tflite"  # "tflite": TFLite_Detection_PostProcess in the graph; "none": raw outputs
    nms_config: NMSConfig = field(default_factory=NMSConfig)
    regular_nms: bool = True
    input_type: str = "float"  # int8 only: "uint8" takes raw pixels (quantized input tensor)

    def validate(self) -> "ExportOptions":
        if self.quant not in QUANT_TYPES:
            raise ValueError(f"--quant must be one of {', '.join(QUANT_TYPES)}, got {self.quant!r}")
        if self.nms not in ("tflite", "none"):
            raise ValueError(f"--nms must be tflite or none, got {self.nms!r}")
        if self.input_type not in ("float", "uint8"):
            raise ValueError(f"--input-type must be float or uint8, got {self.input_type!r}")
        if self.input_type == "uint8" and self.quant != "int8":
            raise ValueError("--input-type uint8 needs --quant int8")
        return self


def sidecar_paths(out: str) -> dict:
    """The files written beside an export ``out``: labels, report, and a rejected file's pair."""
    stem = out[:-len(".tflite")] if out.endswith(".tflite") else out
    return {"labels": stem + ".labels.txt", "report": stem + ".json", "rejected": stem + ".rejected.tflite",
            "rejected_report": stem + ".rejected.json"}


def write_export(out: str, flatbuffer: bytes, labels: list, report: dict) -> dict:
    """Write an export: ``out`` and its sidecars (labels, report), each atomically. When one of them
    fails (a full disk), the files this call created are removed again, so no ``.tflite`` is left
    without its report (files of an earlier export stay as they were or are complete). Returns
    the sidecar paths."""
    from mobile_spinenet.io_utils import write_atomically, write_json_atomically

    paths = sidecar_paths(out)
    targets = [out, paths["labels"], paths["report"]]
    existed = {path: os.path.exists(path) for path in targets}
    try:
        write_atomically(paths["labels"], "".join(name + "\n" for name in labels))
        write_json_atomically(paths["report"], report)
        write_atomically(out, flatbuffer)  # last: a file is there only with its sidecars
    except BaseException:
        for path in targets:
            if not existed[path] and os.path.exists(path):
                os.remove(path)
        raise
    return paths


def clipped_box_codes(codes, anchors, clip_size: int):
    """``codes [1, N, 4]`` -> the codes whose decoded boxes are the original boxes clipped to
    [0, clip_size] (what Model Garden's detection generator suppresses and returns), so that
    ``TFLite_Detection_PostProcess``, which decodes without clipping, gives the clipped boxes."""
    from mobile_spinenet import box_coder

    boxes = tf.clip_by_value(box_coder.decode(codes[0], anchors), 0.0, float(clip_size))
    return box_coder.encode(boxes, anchors)[None]  # (a box clipped to nothing keeps encode's minimum size)


def file_clip_size(options: ExportOptions) -> Optional[int]:
    """The clip before NMS that the exported file's decoding applies (``options.nms_config``'s, but
    for int8 files with the in-graph op): the op cannot clip, so float files give it the codes of
    the clipped boxes; in an int8 file the converter quantizes those ops too (exp and log of box
    codes in int8), which wrecked every box (0% agreement in verification), so int8 files with the
    op suppress unclipped boxes. A raw-output file's consumer clips (the report says so)."""
    if options.nms == "tflite" and options.quant == "int8":
        return None
    return options.nms_config.clip_size


def export_function(model: keras.Model, anchors: Optional[np.ndarray], options: ExportOptions):
    """The concrete function that is converted: image -> named outputs (the model's own with
    ``nms="none"``; ``anchors`` are needed only for the in-graph post-processing)."""
    if options.nms == "none":
        return inference_function(model)
    size = int(model.input_shape[1])
    num_classes = int(model.output_shape["classes"][-1])
    postprocess = detection_postprocess_fn(num_classes, options.nms_config, options.regular_nms)
    op_anchors = tf.constant(normalized_center_anchors(anchors, size))
    clip_size = file_clip_size(options)
    pixel_anchors = tf.constant(anchors, tf.float32) if clip_size is not None else None

    def serve(image):
        outputs = model(image, training=False)
        codes = outputs["boxes"]
        if clip_size is not None:  # the op cannot clip: it is given the codes of the clipped boxes
            codes = clipped_box_codes(codes, pixel_anchors, clip_size)
        boxes, classes, scores, count = postprocess(codes, tf.sigmoid(outputs["classes"]), op_anchors)
        return dict(zip(OUTPUT_NAMES, (boxes, classes, scores, count)))

    return tf.function(serve).get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32, name="image"))


@contextlib.contextmanager
def saved_without_gradients():
    """Within it, the TFLite converter's temporary SavedModel leaves out gradient functions.

    ``TFLiteConverter.from_concrete_functions(...).convert()`` first saves its trackable as a
    SavedModel (``save_debug_info=True``, and TensorFlow's default ``experimental_custom_gradients=True``),
    which traces the gradient function of every op type in the graph and looks up each of their
    captures in a list: 30-40% of a conversion (SpineNet-49xxs, 1 thread: fp32 37 -> 25 s, PTQ int8
    47 -> 27 s, QAT int8 129 -> 93 s), for functions an inference file never holds. The files are
    byte for byte the same (tests/test_tflite_float.py). The converter has no option for it, so its
    module's reference to ``save_options`` is swapped for one whose default is off, and restored;
    a TensorFlow without that reference converts the slow way."""
    from tensorflow.lite.python import lite

    real = getattr(lite, "_save_options", None)
    if real is None or not hasattr(real, "SaveOptions"):
        yield
        return
    lite._save_options = types.SimpleNamespace(  # noqa: SLF001
        SaveOptions=functools.partial(real.SaveOptions, experimental_custom_gradients=False))
    try:
        yield
    finally:
        lite._save_options = real  # noqa: SLF001


def convert(model: keras.Model, anchors: Optional[np.ndarray], options: ExportOptions,
            representative_images: Optional[Callable[[], Iterable[np.ndarray]]] = None,
            quantization_aware: bool = False) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer as ``options`` say.

    ``representative_images()`` yields ``[1, H, W, 3]`` float batches; int8 from a float model
    needs it (post-training calibration); a quantization-aware model brings its own ranges."""
    options.validate()
    # The converter saves its trackable as a SavedModel first. Given the Keras model it traces every
    # layer's call (~4x the conversion time); a bare module holding the variables converts the same graph.
    variables = tf.Module()
    variables.weights = list(model.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([export_function(model, anchors, options)], variables)
    if options.quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif options.quant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif options.quant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not quantization_aware:  # a QAT model brings its ranges; a float one is calibrated
            if representative_images is None:
                raise ValueError("int8 export of a float model needs calibration images (--calib)")
            converter.representative_dataset = lambda: ([image] for image in representative_images())
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        if options.input_type == "uint8":
            converter.inference_input_type = tf.uint8
    if options.nms == "tflite":
        converter.allow_custom_ops = True  # TFLite_Detection_PostProcess is a custom op every runtime ships
    with saved_without_gradients():
        flatbuffer = converter.convert()
    if options.quant == "int8":
        flatbuffer, _ = repair_degenerate_scales(flatbuffer)
    return flatbuffer


DEGENERATE_SCALE = 1e-6  # an int8 activation range below 255 * 1e-6: calibration saw only one value


def repair_degenerate_scales(flatbuffer: bytes) -> tuple[bytes, list]:
    """Give int8 activation tensors whose calibrated range is empty (a ReLU that never fired, e.g.
    a one-channel squeeze-excite) the scale 1/255 instead of ~1e-9; their zero point is kept, so the
    value they hold (0) is unchanged. LiteRT 2.3's XNNPACK delegate aborts the process (double free)
    on such scales. Returns the file and the names of the tensors changed."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
    repaired = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            quantization = tensor.quantization
            is_constant = model.buffers[tensor.buffer].data is not None
            if (tensor.type != schema.TensorType.INT8 or is_constant or quantization is None
                    or quantization.scale is None or len(quantization.scale) != 1):
                continue
            if quantization.scale[0] < DEGENERATE_SCALE:
                quantization.scale = [1.0 / 255.0]
                repaired.append(tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name)
    if not repaired:
        return flatbuffer, []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), repaired


def op_report(flatbuffer: bytes) -> dict:
    """Op histogram, ops that compute in float, and weight/activation tensor types of a file."""
    from mobile_spinenet.quantization.interpreter import interpreter_class

    interpreter = interpreter_class()(model_content=flatbuffer)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops, float_ops = Counter(), Counter()
    for op in interpreter._get_ops_details():  # noqa: SLF001 (the documented way to list ops)
        ops[op["op_name"]] += 1
        outputs = [tensors[i] for i in op["outputs"] if i in tensors]
        if op["op_name"] not in ("DEQUANTIZE", "TFLite_Detection_PostProcess") and any(
                t["dtype"] == np.float32 for t in outputs):
            float_ops[op["op_name"]] += 1
    dtypes = Counter(np.dtype(t["dtype"]).name for t in tensors.values())
    return {"ops": dict(ops.most_common()), "float_ops": dict(float_ops.most_common()),
            "tensor_types": dict(dtypes.most_common()), "size_bytes": len(flatbuffer)}


def format_op_report(report: dict) -> str:
    ops = ", ".join(f"{name} {count}" for name, count in report["ops"].items())
    floats = ", ".join(f"{name} {count}" for name, count in report["float_ops"].items()) or "none"
    return (f"size {report['size_bytes'] / 1e6:.2f} MB\nops: {ops}\n"
            f"ops computing in float: {floats}\ntensor types: {report['tensor_types']}")
