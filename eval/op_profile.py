"""Where a ``.tflite`` file's time goes, op by op, on the runtime phones use (LiteRT + XNNPACK).

LiteRT 2.3's Python API exposes no per-op profiler (its ``benchmark_litert_model`` tool times
whole runs), so each operator of the file is cut out into a one-op model: the same kernel, the same
tensor shapes, quantization parameters and constant buffers, its non-constant inputs made the
model's inputs. Each one-op model is timed alone with XNNPACK at the given thread count (median of
``runs`` invokes). The sum of the ops is printed next to the whole file's time: the difference is
what running ops in isolation changes (cache state, fused partitions, the invoke overhead per
model), so shares are reliable where ops are large, and the whole-file time stays the reference.
Multiply-adds are counted per op (convolutions and fully connected layers), so the table says
what each op type costs per multiply-add."""
from __future__ import annotations

import copy
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass
class OpTiming:
    index: int
    op_type: str
    output_shape: tuple
    multiply_adds: int
    ms: float
    kind: str = ""


SMALL_MAP = 4  # output maps of at most 4x4: P6/P7 at 256 px (and P5 at 128 px)


def op_kind(op_type: str, weight_shape: tuple, output_shape: tuple) -> str:
    """A finer label than the op type, for what the latency questions are about: convolutions by
    kernel size and by small output maps (the P6/P7 convs), depthwise convolutions by whether
    their channel count is a multiple of 8 (XNNPACK's int8 kernels work on 8- or 16-channel tiles)."""
    if op_type not in ("CONV_2D", "DEPTHWISE_CONV_2D") or len(weight_shape) != 4 or len(output_shape) != 4:
        return op_type
    kernel = f"{weight_shape[1]}x{weight_shape[2]}"
    small = max(output_shape[1], output_shape[2]) <= SMALL_MAP
    channels = output_shape[3]
    if op_type == "CONV_2D":
        return f"CONV_2D {kernel}" + (f", map <= {SMALL_MAP}x{SMALL_MAP}" if small else "")
    return f"DEPTHWISE_CONV_2D {kernel}, channels " + ("% 8 = 0" if channels % 8 == 0 else "% 8 != 0")


def _op_name(model, op) -> str:
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_litert import schema_py_generated as schema

    code = model.operatorCodes[op.opcodeIndex]
    builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, str(builtin))


def multiply_adds(op_type: str, tensors: list, op) -> int:
    """Multiply-adds of one op from its tensors' shapes (0 for ops without a weight tensor)."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return 0
    weights = tuple(tensors[op.inputs[1]].shape)
    out = tuple(tensors[op.outputs[0]].shape)
    if op_type == "CONV_2D" and len(weights) == 4:  # [O, kh, kw, I]
        return int(np.prod(out)) * weights[1] * weights[2] * weights[3]
    if op_type == "DEPTHWISE_CONV_2D" and len(weights) == 4:  # [1, kh, kw, C]
        return int(np.prod(out)) * weights[1] * weights[2]
    if op_type == "FULLY_CONNECTED" and len(weights) == 2:  # [O, I]
        return int(np.prod(out)) * weights[1]
    return 0


def one_op_models(flatbuffer: bytes) -> list:
    """``[(index, op type, output shape, multiply-adds, kind, one-op model bytes)]`` of the main graph."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
    graph = model.subgraphs[0]
    result = []
    for index, op in enumerate(graph.operators):
        op_type = _op_name(model, op)
        mini = schema.ModelT()
        mini.version, mini.operatorCodes, mini.description = model.version, model.operatorCodes, b"one op"
        empty = schema.BufferT()
        mini.buffers = [empty]
        tensors, remap = [], {}

        def take(t):
            if t < 0:
                return t
            if t not in remap:
                tensor = copy.copy(graph.tensors[t])
                data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
                if data is not None and len(data):
                    mini.buffers.append(model.buffers[tensor.buffer])
                    tensor.buffer = len(mini.buffers) - 1
                else:
                    tensor.buffer = 0
                remap[t] = len(tensors)
                tensors.append(tensor)
            return remap[t]

        new_op = copy.copy(op)
        new_op.inputs = [take(t) for t in op.inputs]
        new_op.outputs = [take(t) for t in op.outputs]
        new_op.intermediates = []
        sub = schema.SubGraphT()
        sub.tensors, sub.operators, sub.name = tensors, [new_op], b"op"
        sub.inputs = [remap[t] for t in op.inputs if t >= 0 and tensors[remap[t]].buffer == 0]
        sub.outputs = list(new_op.outputs)
        mini.subgraphs = [sub]
        output_shape = tuple(int(v) for v in graph.tensors[op.outputs[0]].shape)  # (NumPy ints: not JSON)
        weight_shape = (tuple(int(v) for v in graph.tensors[op.inputs[1]].shape)
                        if len(op.inputs) > 1 and op.inputs[1] >= 0 else ())
        result.append((index, op_type, output_shape, int(multiply_adds(op_type, graph.tensors, op)),
                       op_kind(op_type, weight_shape, output_shape),
                       bytes(flatbuffer_utils.convert_object_to_bytearray(mini))))
    return result


def _fill(interpreter, rng) -> None:
    for detail in interpreter.get_input_details():
        dtype, shape = detail["dtype"], detail["shape"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype)
        else:
            value = rng.uniform(-1, 1, shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)


def time_model(content: bytes, threads: int, runs: int, warmup: int = 3) -> float:
    """Median ms of ``runs`` invokes of a flatbuffer with the default XNNPACK delegate."""
    from mobile_spinenet.quantization.interpreter import load_interpreter

    interpreter = load_interpreter(model_content=content, num_threads=threads)
    _fill(interpreter, np.random.default_rng(0))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def profile(path: str, threads: int = 1, runs: int = 30, progress=None) -> dict:
    """Per-op and per-op-type times of ``path`` at ``threads``, next to the whole file's time."""
    with open(path, "rb") as f:
        flatbuffer = f.read()
    ops = one_op_models(flatbuffer)
    timings = []
    for n, (index, op_type, shape, macs, kind, content) in enumerate(ops):
        try:
            ms = time_model(content, threads, runs)
        except ValueError as error:  # an op that cannot run alone (e.g. it needs a resource): reported, not timed
            ms = float("nan")
            if progress:
                progress(f"op {index} {op_type} cannot run alone: {error}")
        timings.append(OpTiming(index, op_type, shape, macs, ms, kind))
        if progress and (n + 1) % 100 == 0:
            progress(f"timed {n + 1}/{len(ops)} ops")
    whole = time_model(flatbuffer, threads, max(runs, 20), warmup=5)
    types = _grouped(timings, lambda t: t.op_type, "op_type")
    total = sum(row["ms"] for row in types)
    top = sorted((t for t in timings if not np.isnan(t.ms)), key=lambda t: -t.ms)[:20]
    return {"model": path, "threads": threads, "runs": runs, "whole_ms": whole, "sum_of_ops_ms": total,
            "ops": len(timings), "multiply_adds": sum(t.multiply_adds for t in timings), "by_type": types,
            "by_kind": _grouped(timings, lambda t: t.kind, "kind"),
            "top": [{"index": t.index, "op_type": t.op_type, "kind": t.kind, "output_shape": list(t.output_shape),
                     "multiply_adds": t.multiply_adds, "ms": t.ms} for t in top]}


def _grouped(timings: list, key, name: str) -> list:
    """Rows of count, ms, share, multiply-adds and ns per multiply-add per ``key``, slowest first."""
    groups = defaultdict(lambda: {"count": 0, "ms": 0.0, "multiply_adds": 0})
    for t in timings:
        row = groups[key(t)]
        row["count"] += 1
        row["ms"] += 0.0 if np.isnan(t.ms) else t.ms
        row["multiply_adds"] += t.multiply_adds
    total = sum(row["ms"] for row in groups.values())
    return [{name: label, **row, "share": row["ms"] / total if total else 0.0,
             "ns_per_multiply_add": row["ms"] * 1e6 / row["multiply_adds"] if row["multiply_adds"] else None}
            for label, row in sorted(groups.items(), key=lambda item: -item[1]["ms"])]


def _table(rows: list, name: str, title: str) -> list:
    lines = [f"| {title} | count | ms | share | M multiply-adds | ns / multiply-add |", "|---|---|---|---|---|---|"]
    for row in rows:
        per = "" if row["ns_per_multiply_add"] is None else f"{row['ns_per_multiply_add']:.3f}"
        lines.append(f"| {row[name]} | {row['count']} | {row['ms']:.3f} | {row['share']:.1%} | "
                     f"{row['multiply_adds'] / 1e6:.2f} | {per} |")
    return lines


def format_profile(result: dict) -> str:
    lines = [f"## {result['model']}: {result['threads']} thread(s), XNNPACK, one-op models (median of "
             f"{result['runs']})", "",
             f"whole file {result['whole_ms']:.2f} ms; sum of its {result['ops']} ops alone "
             f"{result['sum_of_ops_ms']:.2f} ms; {result['multiply_adds'] / 1e6:.1f} M multiply-adds "
             f"({result['whole_ms'] * 1e6 / max(result['multiply_adds'], 1):.3f} ns each, whole file)", "",
             ]
    lines += _table(result["by_type"], "op_type", "op type")
    kinds = [row for row in result.get("by_kind", []) if row["kind"] not in {r["op_type"] for r in result["by_type"]}]
    if kinds:  # the convolutions split by kernel, small maps and channel multiples
        lines += [""] + _table(kinds, "kind", "convolution kind")
    lines += ["", "| top op | type | output | ms | M multiply-adds |", "|---|---|---|---|---|"]
    for row in result["top"]:
        lines.append(f"| {row['index']} | {row['op_type']} | {'x'.join(map(str, row['output_shape']))} | "
                     f"{row['ms']:.3f} | {row['multiply_adds'] / 1e6:.2f} |")
    return "\n".join(lines) + "\n"
