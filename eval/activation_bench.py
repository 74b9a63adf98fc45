"""``mobile-spinenet bench activations``: int8 latency of one model built with different
activations (the brief's "measure both before choosing the mobile activation").

Each (model, activation) is built untrained, made quantization-aware, calibrated on random images
and converted to int8 as a QAT run exports it, with raw outputs (``--nms none``): the in-graph
post-processing's time depends on how many anchors an untrained model scores above 0.05 (one
random ReLU model took 4x the time of the others in it), not on the activation; then
:func:`mobile_spinenet.eval.benchmark.benchmark` times it and reports what XNNPACK took. Weights
do not change int8 latency, so no training is needed; accuracy is another question (docs)."""
from __future__ import annotations

import os
import tempfile
from typing import Sequence

import numpy as np


def int8_file(model_id: str, activation: str, image_size: int, path: str, num_classes: int = 10) -> None:
    """Write the QAT-path int8 ``.tflite`` (raw outputs) of an untrained ``model_id`` built with ``activation``."""
    from mobile_spinenet.quantization.export import ExportOptions, convert
    from mobile_spinenet.quantization.qat import calibrate_ranges, quantizable_model, quantize_aware
    from mobile_spinenet.zoo import build_model, model_anchors

    build = {"image_size": image_size, "num_classes": num_classes, "activation": activation}
    qat = quantize_aware(quantizable_model(model_id, build_model(model_id, **build), **build))
    rng = np.random.default_rng(0)
    calibrate_ranges(qat, [rng.uniform(-1, 1, (2, image_size, image_size, 3)).astype("float32") for _ in range(2)])
    flatbuffer = convert(qat, model_anchors(model_id, image_size), ExportOptions("int8", nms="none"),
                         quantization_aware=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)


def bench_activations(model_ids: Sequence[str], activations: Sequence[str], image_size: int = 256,
                      threads=(1, 2), runs: int = 50, rounds: int = 3) -> list:
    """One row per (model, activation): latency medians per thread count and XNNPACK's partitions.
    All files are built first, then timed together in ``rounds`` interleaved passes."""
    from mobile_spinenet.blocks import ACTIVATIONS
    from mobile_spinenet.eval.benchmark import benchmark_interleaved

    unknown = [a for a in activations if a not in ACTIVATIONS]
    if unknown:
        raise ValueError(f"--activations: unknown {', '.join(unknown)}; choose from {', '.join(ACTIVATIONS)}")
    pairs = [(model_id, activation) for model_id in model_ids for activation in activations]
    with tempfile.TemporaryDirectory(prefix="bench-activations-") as temp:
        paths = [os.path.join(temp, f"{model_id}_{activation}.tflite") for model_id, activation in pairs]
        for (model_id, activation), path in zip(pairs, paths):
            int8_file(model_id, activation, image_size, path)
        measured = benchmark_interleaved(paths, threads, runs, 5, rounds)
        return [{"model": model_id, "activation": activation, "image_size": image_size,
                 "mb": os.path.getsize(path) / 1e6,
                 "median_ms": {entry["threads"]: entry["median_ms"] for entry in measured[path]},
                 "round_medians_ms": {entry["threads"]: entry["round_medians_ms"] for entry in measured[path]},
                 "delegation": measured[path][0]["delegation"]}
                for (model_id, activation), path in zip(pairs, paths)]


def format_activation_bench(rows: list) -> str:
    """A markdown table of :func:`bench_activations` rows."""
    from mobile_spinenet.eval.benchmark import describe_delegation

    threads = list(rows[0]["median_ms"]) if rows else []
    lines = ["| model | activation | int8 MB | " + " | ".join(f"ms, {t} thr" for t in threads) + " | XNNPACK |",
             "|" + "---|" * (4 + len(threads))]
    for row in rows:
        lines.append(f"| {row['model']} | {row['activation']} | {row['mb']:.2f} | "
                     + " | ".join(f"{row['median_ms'][t]:.2f}" for t in threads)
                     + f" | {describe_delegation(row['delegation']).removeprefix('XNNPACK: ')} |")
    return "\n".join(lines)
