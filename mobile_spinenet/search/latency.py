"""The latency oracle of ``mobile-spinenet search``: an architecture's int8 network latency on the
target, measured, not estimated from multiply-adds.

Each architecture is built untrained, made quantization-aware, calibrated on random images and
converted to int8 with raw outputs, as ``bench variants`` does (weights do not change int8
latency; the in-graph post-processing is left out because an untrained model's scores, not its
architecture, decide its cost). The file is timed with the kit's benchmark (ai-edge-litert,
XNNPACK, the asked thread count) interleaved with the *reference*: the target model's network file
built the same way (e.g. MobileNetV3-Large-SSDLite at 256 px). Hosts differ between sessions and
drift within one, so the oracle's figure is the ratio of the two medians from one interleaved run,
times the reference's median of the search's first measurement: ``latency_ms`` on one host's scale,
comparable across the whole search."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

from mobile_spinenet.io_utils import write_json_atomically


@dataclass(frozen=True)
class LatencyOptions:
    image_size: int = 256
    threads: int = 1
    runs: int = 30  # timed invocations per round
    rounds: int = 3  # interleaved rounds of (architecture, reference)
    num_classes: int = 10

    def validate(self) -> "LatencyOptions":
        for name in ("image_size", "threads", "runs", "rounds", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"latency {name.replace('_', ' ')} must be a positive whole number, got {value!r}")
        return self


def reference_file(reference: str, options: LatencyOptions, folder: str) -> str:
    """The reference's int8 network file (built once, kept in ``folder``). ``reference``: a model
    id or ``ID@SIZE`` (the size defaults to the search's)."""
    from mobile_spinenet.eval.entries import parse_entry
    from mobile_spinenet.eval.latency_variants import int8_file

    entry = parse_entry(reference)
    size = entry.image_size or options.image_size
    path = os.path.join(folder, f"reference_{entry.model_id}_{size}.tflite")
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        temp = path + ".partial"
        int8_file(entry.model_id, {}, size, temp, options.num_classes)
        os.replace(temp, path)
    return path


def architecture_file(architecture, options: LatencyOptions, path: str) -> int:
    """Write the architecture's int8 network file; returns its float multiply-adds."""
    from mobile_spinenet.eval.latency_variants import int8_file

    temp = path + ".partial"
    multiply_adds = int8_file(architecture.base, {"spec": architecture}, options.image_size, temp, options.num_classes)
    os.replace(temp, path)
    return multiply_adds


def time_against_reference(path: str, reference: str, options: LatencyOptions) -> dict:
    """Medians of ``path`` and ``reference`` at ``options.threads`` from one interleaved run."""
    from mobile_spinenet.eval.benchmark import benchmark_interleaved

    measured = benchmark_interleaved([path, reference], (options.threads,), options.runs, 3, options.rounds)
    own, ref = measured[path][0]["median_ms"], measured[reference][0]["median_ms"]
    return {"median_ms": own, "reference_median_ms": ref, "ratio": own / ref}


class LatencyOracle:
    """Measures architectures against one reference; the reference's first median (kept in
    ``folder/reference.json``, shared by every worker of a search) sets the ms scale."""

    def __init__(self, reference: str, options: LatencyOptions, folder: str):
        self.options = options.validate()
        self.folder = folder
        self.reference = reference
        self.reference_path = reference_file(reference, options, folder)
        self.scale_path = os.path.join(folder, "reference.json")

    def scale_ms(self, measured_ms: float) -> float:
        """The reference's ms on the search's scale (its first measurement, recorded once)."""
        if not os.path.isfile(self.scale_path):  # the first measurement of any worker sets it, once
            temp = f"{self.scale_path}.{os.getpid()}"
            write_json_atomically(temp, {"reference": self.reference, "median_ms": measured_ms,
                                         "threads": self.options.threads})
            try:
                os.link(temp, self.scale_path)  # fails if another worker was first: its figure stands
            except FileExistsError:
                pass
            finally:
                os.remove(temp)
        with open(self.scale_path) as f:
            return json.load(f)["median_ms"]

    def measure(self, architecture, path: str) -> dict:
        """``latency_ms`` (on the search's scale), the raw medians and the multiply-adds of ``architecture``."""
        multiply_adds = architecture_file(architecture, self.options, path)
        timed = time_against_reference(path, self.reference_path, self.options)
        scale = self.scale_ms(timed["reference_median_ms"])
        return {"latency_ms": timed["ratio"] * scale, "latency_ratio": timed["ratio"], "multiply_adds": multiply_adds,
                "median_ms": timed["median_ms"], "reference_median_ms": timed["reference_median_ms"],
                "reference_scale_ms": scale}

    def target_ms(self, target_ms: Optional[float]) -> float:
        """The latency target: ``target_ms`` if given, else the reference's own latency on the scale."""
        if target_ms is not None:
            return target_ms
        if not os.path.isfile(self.scale_path):  # nothing measured yet: time the reference alone once
            from mobile_spinenet.eval.benchmark import benchmark_interleaved
            measured = benchmark_interleaved([self.reference_path], (self.options.threads,), self.options.runs, 3,
                                             self.options.rounds)
            return self.scale_ms(measured[self.reference_path][0]["median_ms"])
        with open(self.scale_path) as f:
            return json.load(f)["median_ms"]
