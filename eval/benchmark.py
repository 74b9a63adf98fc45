"""On-device-style latency benchmark of a ``.tflite`` file with the ai-edge-litert interpreter
(what ``mobile-spinenet benchmark`` prints), as the paper's Table 4 reports it: model latency
and an end-to-end figure (image decode + resize + inference + post-processing).

Each thread count runs in a child process that imports no TensorFlow, so its peak RSS is the
interpreter's own and a runtime that aborts is reported instead of taking the command down."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

import numpy as np

from mobile_spinenet.data.images import letterbox  # noqa: F401  (the one preprocessing)

INTERLEAVED_ROUNDS = 3  # passes over all files when several are timed together; the median round counts

FIELDS = ("threads", "delegate", "init_ms", "first_inference_ms", "median_ms", "p90_ms", "min_ms",
          "end_to_end_median_ms", "peak_rss_mb", "model_mb")


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(model_path: str, threads: int, runs: int, warmup: int, delegate: str, image_path: str) -> dict:
    """Benchmark one configuration in this process (no TensorFlow import)."""
    from mobile_spinenet.quantization.interpreter import (InputFeed, delegation, feed_of, input_layout, load_interpreter,
                                                         run)

    started = time.perf_counter()
    interpreter = load_interpreter(model_path, num_threads=threads, builtin_kernels=delegate == "none")
    init_ms = (time.perf_counter() - started) * 1e3
    detail = interpreter.get_input_details()[0]
    layout, size = input_layout(detail, model_path)
    note = {}
    try:
        feed_of(interpreter)  # how the input is fed (reads metadata for integer inputs): not part of the timings
    except ValueError as error:  # latency does not depend on the values: time it with raw pixels, and say so
        interpreter.kit_feed = InputFeed(np.dtype(detail["dtype"]).type, raw_pixels=True, layout=layout)
        note = {"input_note": f"{error}; timed with raw pixel values (latency does not depend on them)"}
    image = letterbox(image_path, size)

    def timed(fn):
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    first_ms = timed(lambda: run(interpreter, image))
    for _ in range(warmup):
        run(interpreter, image)
    latencies = [timed(lambda: run(interpreter, image)) for _ in range(runs)]
    end_to_end = [timed(lambda: _end_to_end(interpreter, image_path, size)) for _ in range(max(5, runs // 5))]
    return {"threads": threads, "delegate": delegate, "init_ms": init_ms, "first_inference_ms": first_ms,
            "median_ms": statistics.median(latencies), "p90_ms": _percentile(latencies, 90),
            "min_ms": min(latencies), "end_to_end_median_ms": statistics.median(end_to_end),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "model_mb": os.path.getsize(model_path) / 1e6, "runs": runs, "warmup": warmup, "input_layout": layout,
            **note, **({"delegation": delegation(interpreter)} if delegate == "xnnpack" else {})}


def _end_to_end(interpreter, image_path: str, size: int):
    """Decode + letterbox + inference + detections above 0.05 as a list (files with the in-graph
    post-processing; raw-output files stop at their raw outputs)."""
    from mobile_spinenet.quantization.interpreter import run

    outputs = run(interpreter, letterbox(image_path, size))
    if "number of detections" in outputs:
        count = int(outputs["number of detections"][0])
        keep = outputs["score"][0, :count] >= 0.05
        return list(zip(outputs["location"][0, :count][keep], outputs["category"][0, :count][keep]))
    return outputs


def default_image(folder: str) -> str:
    """One demo canvas (real Fashion-MNIST photos on a background) to time the end-to-end path."""
    from mobile_spinenet.data.demo import make_split

    make_split(folder, "val", 1, seed=0)
    images = os.path.join(folder, "images")
    return os.path.join(images, sorted(os.listdir(images))[0])


def check_benchmark_args(model_path: str, threads, runs: int, warmup: int, delegate: str) -> None:
    """Clear errors for what the child process would otherwise die on."""
    if not os.path.isfile(model_path):
        raise ValueError(f"{model_path} does not exist")
    if delegate not in ("xnnpack", "none"):
        raise ValueError(f"--delegate must be xnnpack or none, got {delegate!r}")
    if not threads or any(int(t) < 1 for t in threads):
        raise ValueError(f"--threads takes thread counts of 1 or more, got {','.join(map(str, threads)) or 'none'}")
    if runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"--warmup must be 0 or more, got {warmup}")


def benchmark(model_path: str, threads=(1, 2), runs: int = 100, warmup: int = 10, delegate: str = "xnnpack",
              image_path: Optional[str] = None) -> list:
    """One result dict per thread count, each measured in its own child process."""
    check_benchmark_args(model_path, threads, runs, warmup, delegate)
    results = []
    with tempfile.TemporaryDirectory(prefix="benchmark-") as temp:
        image_path = image_path or default_image(temp)
        for count in threads:
            args = json.dumps([model_path, count, runs, warmup, delegate, image_path])
            child = subprocess.run([sys.executable, "-m", "mobile_spinenet.eval.benchmark", args],
                                   capture_output=True, text=True)
            last = (child.stdout.strip().splitlines() or ["{}"])[-1]
            try:
                result = json.loads(last)
            except json.JSONDecodeError:
                result = {}
            if child.returncode != 0 or "error" in result:
                reason = result.get("error") or " | ".join(child.stderr.strip().splitlines()[-2:]) or "no message"
                raise ValueError(f"{model_path} with {count} thread(s), delegate {delegate}: the runtime failed "
                                 f"(exit {child.returncode}): {reason}")
            results.append(result)
    return results


def benchmark_interleaved(paths: list, threads=(1, 2), runs: int = 50, warmup: int = 5,
                          rounds: int = INTERLEAVED_ROUNDS,
                          image_path: Optional[str] = None) -> dict:
    """Benchmark several files in ``rounds`` round-robin passes, so that the machine's drift over
    minutes (it moved one file's median by 10-16% within an hour here) falls on every file alike.

    Returns ``{path: [entry per thread count]}``: each entry is that of the round with the median
    latency, with every round's median in ``round_medians_ms``."""
    measured = {path: {count: [] for count in threads} for path in paths}
    with tempfile.TemporaryDirectory(prefix="benchmark-") as temp:
        image_path = image_path or default_image(temp)
        for _ in range(rounds):
            for path in paths:
                for entry in benchmark(path, threads, runs, warmup, image_path=image_path):
                    measured[path][entry["threads"]].append(entry)
    chosen = {}
    for path, by_threads in measured.items():
        chosen[path] = []
        for count, entries in by_threads.items():
            middle = sorted(entries, key=lambda e: e["median_ms"])[len(entries) // 2]
            chosen[path].append({**middle, "rounds": rounds, "round_medians_ms": [e["median_ms"] for e in entries]})
    return chosen


def format_results(model_path: str, results: list) -> str:
    """A text table of :func:`benchmark` results."""
    header = "| threads | delegate | init ms | first ms | median ms | p90 ms | min ms | end-to-end ms | peak RSS MB | size MB |"
    rows = [f"| {r['threads']} | {r['delegate']} | {r['init_ms']:.1f} | {r['first_inference_ms']:.1f} | "
            f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['min_ms']:.2f} | {r['end_to_end_median_ms']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['model_mb']:.2f} |" for r in results]
    runs = results[0]["runs"] if results else 0
    lines = [f"{model_path}: {runs} timed runs after warm-up, ai-edge-litert", header, "|" + "---|" * 10] + rows
    delegated = next((r["delegation"] for r in results if "delegation" in r), None)
    if delegated:
        lines.append(describe_delegation(delegated))
    if results and results[0].get("input_layout") == "NCHW":
        lines.append("input: NCHW (channels first), fed transposed")
    note = next((r["input_note"] for r in results if "input_note" in r), None)
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def format_comparison(measured: dict) -> str:
    """A text table of :func:`benchmark_interleaved` results: each file's median and end-to-end time,
    and both as a ratio to the first file's median (the reference, e.g. the network alone)."""
    paths = list(measured)
    reference = {entry["threads"]: entry["median_ms"] for entry in measured[paths[0]]}
    rounds = measured[paths[0]][0]["rounds"] if measured[paths[0]] else 0
    lines = [f"{len(paths)} files timed in {rounds} interleaved rounds (the median round of each), ai-edge-litert; "
             f"ratios against the median of {os.path.basename(paths[0])}",
             "| file | threads | median ms | end-to-end ms | median / reference | end-to-end / reference |",
             "|" + "---|" * 6]
    for path in paths:
        for entry in measured[path]:
            base = reference[entry["threads"]]
            lines.append(f"| {os.path.basename(path)} | {entry['threads']} | {entry['median_ms']:.2f} | "
                         f"{entry['end_to_end_median_ms']:.2f} | {entry['median_ms'] / base:.2f} | "
                         f"{entry['end_to_end_median_ms'] / base:.2f} |")
    return "\n".join(lines)


def describe_delegation(delegated: dict) -> str:
    """One line: XNNPACK partitions and the ops left to the builtin kernels."""
    outside = ", ".join(f"{name} x{count}" for name, count in delegated["outside"].items()) or "none"
    return f"XNNPACK: {delegated['partitions']} partition(s); ops left to the builtin kernels: {outside}"


def _child(argument: str) -> int:
    """The child process of :func:`benchmark`: one JSON line, the result or ``{"error": ...}``."""
    try:
        print(json.dumps(measure(*json.loads(argument))))
        return 0
    except Exception as error:  # reported by the parent as one line
        print(json.dumps({"error": str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}))
        return 1


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
