"""The TFLite interpreter: ai-edge-litert first, then tflite-runtime, then TensorFlow's."""
from __future__ import annotations

import os
import sys
from collections import Counter


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
    return interpreter


def run(interpreter, image) -> dict:
    """One inference on ``image``; outputs by signature name (``classes``, ``boxes``, ...),
    falling back to tensor names for files without a signature. Never by index."""
    signatures = interpreter.get_signature_list()
    if signatures:
        key = next(iter(signatures))
        input_name = signatures[key]["inputs"][0]
        runner = interpreter.get_signature_runner(key)
        dtype = runner.get_input_details()[input_name]["dtype"]
        return runner(**{input_name: image.astype(dtype)})
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


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
