"""The TFLite interpreter: ai-edge-litert first, then tflite-runtime, then TensorFlow's; how
any detector file is fed (:class:`InputFeed`) and how its outputs are named, whether the kit
made it or not (a TF Object Detection API file has no signature and no metadata)."""
from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
DETECTION_OUTPUTS = ("location", "category", "score", "number of detections")  # the op's output order
KIT_NORMALIZATION = (PIXEL_MEAN, PIXEL_STD)


@dataclass(frozen=True)
class InputFeed:
    """How a file's input tensor takes an image that the kit preprocessed to [-1, 1].

    Float inputs get ``(pixel - mean) / std``; integer inputs get raw pixels when the file takes
    them (no metadata, or quantization that inverts the metadata's normalisation), else the
    normalised value quantized with the tensor's scale and zero point."""

    dtype: type
    mean: float = KIT_NORMALIZATION[0]
    std: float = KIT_NORMALIZATION[1]
    raw_pixels: bool = False
    scale: float = 0.0
    zero_point: int = 0
    layout: str = "NHWC"  # or "NCHW" (channels first: PyTorch-born files, Ultralytics' exports)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        fed = self._values(image)
        return np.ascontiguousarray(fed.transpose(0, 3, 1, 2)) if self.layout == "NCHW" else fed

    def _values(self, image: np.ndarray) -> np.ndarray:
        if (self.mean, self.std) == KIT_NORMALIZATION and not np.issubdtype(self.dtype, np.integer):
            return image.astype(self.dtype)  # the kit's own range: no round trip through pixels
        pixels = image.astype(np.float64) * PIXEL_STD + PIXEL_MEAN
        if not np.issubdtype(self.dtype, np.integer):
            return ((pixels - self.mean) / self.std).astype(self.dtype)
        info = np.iinfo(self.dtype)
        if self.raw_pixels:
            values = np.round(pixels) + (info.min if info.min < 0 else 0)
        else:
            values = np.round((pixels - self.mean) / self.std / self.scale + self.zero_point)
        return np.clip(values, info.min, info.max).astype(self.dtype)


def input_layout(detail: dict, what: str = "the file") -> tuple:
    """``(layout, side)`` of an image input: ``[1, S, S, 3]`` is ``"NHWC"``, ``[1, 3, S, S]``
    ``"NCHW"``; anything else is a one-line error naming the shape."""
    shape = [int(v) for v in detail["shape"]]
    if len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and shape[1] == shape[2] > 3:
        return "NHWC", shape[1]
    if len(shape) == 4 and shape[0] == 1 and shape[1] == 3 and shape[2] == shape[3] > 3:
        return "NCHW", shape[2]
    raise ValueError(f"{what} takes input of shape {shape}; the kit feeds one square RGB image, [1, S, S, 3] "
                     f"(NHWC) or [1, 3, S, S] (NCHW)")


def _layout_or_nhwc(detail: dict) -> str:
    """The input's layout when it is an image batch; any other input (a test's feature map) is fed
    as given."""
    try:
        return input_layout(detail)[0] if "shape" in detail else "NHWC"
    except ValueError:
        return "NHWC"


def input_feed(detail: dict, normalization: Optional[tuple], what: str = "the file") -> InputFeed:
    """The :class:`InputFeed` of an input tensor ``detail`` given the metadata's (mean, std), or
    a clear error when the file does not say enough to feed it correctly."""
    dtype = np.dtype(detail["dtype"]).type
    layout = _layout_or_nhwc(detail)
    if not np.issubdtype(dtype, np.integer):
        if np.issubdtype(dtype, np.floating):
            return InputFeed(dtype, *(normalization or KIT_NORMALIZATION), layout=layout)
        raise ValueError(f"{what} takes {np.dtype(dtype).name} input, which the kit cannot feed images to")
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if normalization is None:
        if dtype == np.uint8:  # the convention of every uint8 detector without metadata: raw pixels
            return InputFeed(dtype, raw_pixels=True, scale=scale, zero_point=zero_point, layout=layout)
        raise ValueError(f"{what} takes {np.dtype(dtype).name} input and has no normalisation metadata: "
                         f"cannot tell which values its pixels should have")
    mean, std = normalization
    if scale and abs(scale * std - 1.0) < 1e-3 and abs(zero_point - mean) <= 1.0:
        return InputFeed(dtype, mean, std, raw_pixels=True, scale=scale, zero_point=zero_point, layout=layout)
    if not scale:
        raise ValueError(f"{what} takes {np.dtype(dtype).name} input without quantization parameters")
    return InputFeed(dtype, mean, std, scale=scale, zero_point=zero_point, layout=layout)


def file_normalization(source) -> Optional[tuple]:
    """(mean, std) from a file's TFLite metadata (path or bytes), or None without metadata."""
    from mobile_spinenet.quantization.metadata import read_metadata

    try:
        content = open(source, "rb").read() if isinstance(source, str) else bytes(source)
        found = read_metadata(content)
    except Exception:  # no metadata, or metadata of another shape: the caller falls back
        return None
    mean, std = found.get("mean") or [], found.get("std") or []
    return (float(mean[0]), float(std[0])) if len(mean) == 1 and len(std) == 1 else None


def interpreter_class():
    """The best TFLite ``Interpreter`` class installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            from mobile_spinenet.backend import tf
            Interpreter = tf.lite.Interpreter
    return Interpreter


def load_interpreter(model_path=None, model_content=None, num_threads=None, builtin_kernels: bool = False):
    """An allocated interpreter for a ``.tflite`` path or flatbuffer bytes.

    ``builtin_kernels`` skips the default XNNPACK delegate and runs TFLite's own (reference)
    kernels: slower, used by export verification."""
    cls = interpreter_class()
    kwargs = {}
    if builtin_kernels:
        resolver = sys.modules[cls.__module__].OpResolverType
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    what = model_path or "the converted model"
    if model_path is not None and not os.path.isfile(model_path):
        raise ValueError(f"{model_path} does not exist")
    try:
        interpreter = cls(model_path=model_path, model_content=model_content, num_threads=num_threads, **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{what} is not a loadable .tflite file: {reason}") from None
    interpreter.kit_source = model_path if model_path is not None else model_content  # for its metadata
    interpreter.kit_what = what
    return interpreter


def feed_of(interpreter) -> InputFeed:
    """The interpreter's :class:`InputFeed`, worked out once (its metadata is read only for
    inputs that need it, so loading stays as fast as the runtime's)."""
    feed = getattr(interpreter, "kit_feed", None)
    if feed is None:
        detail = interpreter.get_input_details()[0]
        source = getattr(interpreter, "kit_source", None)
        normalization = file_normalization(source) if source is not None else None
        feed = input_feed(detail, normalization, getattr(interpreter, "kit_what", "the file"))
        interpreter.kit_feed = feed
    return feed


def postprocess_names(interpreter) -> dict:
    """``{tensor index: kit output name}`` of the ``TFLite_Detection_PostProcess`` op's outputs
    (found by the op, whatever the file calls its tensors), or ``{}`` without that op."""
    names = getattr(interpreter, "kit_postprocess_names", None)
    if names is None:
        op = next((op for op in interpreter._get_ops_details() if op["op_name"] == POSTPROCESS_OP), None)
        names = dict(zip((int(t) for t in op["outputs"]), DETECTION_OUTPUTS)) if op else {}
        interpreter.kit_postprocess_names = names
    return names


def run(interpreter, image) -> dict:
    """One inference on ``image`` (preprocessed by the kit to [-1, 1]; fed as the file wants it,
    see :class:`InputFeed`). Outputs by name: ``location``/``category``/``score``/``number of
    detections`` wherever the file has the post-processing op, else by signature name
    (``classes``, ``boxes``), else by tensor name. Never by index."""
    fed = feed_of(interpreter)(image)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], fed)
    interpreter.invoke()
    renamed = postprocess_names(interpreter)
    names = _signature_output_names(interpreter)
    return {renamed.get(d["index"], names.get(d["index"], d["name"])): interpreter.get_tensor(d["index"])
            for d in interpreter.get_output_details()}


def _signature_output_names(interpreter) -> dict:
    """``{tensor index: signature output name}`` of the file's first signature (``{}`` without one)."""
    names = getattr(interpreter, "kit_signature_names", None)
    if names is None:
        names = {}
        signatures = interpreter.get_signature_list()
        if signatures:
            runner = interpreter.get_signature_runner(next(iter(signatures)))
            names = {int(d["index"]): name for name, d in runner.get_output_details().items()}
        interpreter.kit_signature_names = names
    return names


def delegation(interpreter) -> dict:
    """How the default delegate (XNNPACK) took an allocated interpreter's graph.

    ``partitions`` counts the DELEGATE nodes; ``outside`` is a histogram of the ops left to the
    builtin kernels, found by walking back from the graph outputs and the partitions' inputs
    through tensors no partition produces. Each op outside splits the graph and runs on one thread."""
    ops = interpreter._get_ops_details()  # the public API lists no nodes; this is what it uses
    partitions = [op for op in ops if op["op_name"] == "DELEGATE"]
    delegated = {t for op in partitions for t in op["outputs"]}
    producer = {t: op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    wanted = {t for op in partitions for t in op["inputs"]} | {d["index"] for d in interpreter.get_output_details()}
    frontier = [producer[t] for t in wanted - delegated if t in producer]
    outside = {}
    while frontier:
        op = frontier.pop()
        if op["index"] not in outside:
            outside[op["index"]] = op["op_name"]
            frontier += [producer[t] for t in op["inputs"] if t not in delegated and t in producer]
    return {"partitions": len(partitions), "outside": dict(sorted(Counter(outside.values()).items()))}
