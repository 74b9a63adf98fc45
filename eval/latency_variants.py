"""``mobile-spinenet bench variants``: int8 network latency of models built with builder options,
next to their multiply-adds, all timed in one interleaved run (issue #14's "options that attack
what the profile shows").

A variant is a set of ``zoo.build_model`` options (``paper``: none, the id's own architecture;
``channel_divisor=8+se_ratio=0``: two at once). Each (model, variant) is built untrained, made
quantization-aware, calibrated on random images and converted to int8 as a QAT run exports it,
with raw outputs (``--nms none``: the network alone; the in-graph post-processing's time depends
on how many anchors an untrained model scores above the threshold). Weights do not change int8
latency, so no training is needed; accuracy is another question. The files are then timed
together in interleaved rounds (:func:`mobile_spinenet.eval.benchmark.benchmark_interleaved`), and
each row gets its nanoseconds per multiply-add and their ratio to the reference row's."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence

import numpy as np

# the build options a variant may set, with how their values are read
OPTION_TYPES = {"activation": str, "channel_divisor": int, "se_ratio": float, "se_gate": str}
PAPER = "paper"


def parse_variants(text: str) -> list:
    """``"paper,channel_divisor=8,se_ratio=0+activation=relu"`` -> ``[{}, {...}, {...}]``."""
    variants = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == PAPER:
            variants.append({})
            continue
        options = {}
        for setting in item.split("+"):
            key, _, value = setting.partition("=")
            if key not in OPTION_TYPES or not value:
                raise ValueError(f"--variants: {setting!r} is not OPTION=VALUE with OPTION one of "
                                 f"{', '.join(OPTION_TYPES)} (or the variant '{PAPER}')")
            try:
                options[key] = OPTION_TYPES[key](value)
            except ValueError:
                raise ValueError(f"--variants: {key} takes a {OPTION_TYPES[key].__name__}, got {value!r}") from None
        variants.append(options)
    if not variants:
        raise ValueError("--variants: give at least one variant")
    return variants


def variant_label(options: dict) -> str:
    return "+".join(f"{k}={v}" for k, v in options.items()) or PAPER


def int8_file(model_id: str, options: dict, image_size: int, path: str, num_classes: int = 10) -> int:
    """Write the QAT-path int8 ``.tflite`` (raw outputs) of an untrained ``model_id`` built with
    ``options``; returns the float model's multiply-adds (batch 1)."""
    from mobile_spinenet.counting import count_multiply_adds
    from mobile_spinenet.quantization.export import ExportOptions, convert
    from mobile_spinenet.quantization.qat import calibrate_ranges, quantization_aware_copy
    from mobile_spinenet.zoo import build_model, model_anchors

    build = {"image_size": image_size, "num_classes": num_classes, **options}
    float_model = build_model(model_id, batch_size=1, **build)
    multiply_adds = count_multiply_adds(float_model)
    qat = quantization_aware_copy(model_id, float_model, **build)
    rng = np.random.default_rng(0)
    calibrate_ranges(qat, [rng.uniform(-1, 1, (1, image_size, image_size, 3)).astype("float32") for _ in range(4)])
    flatbuffer = convert(qat, model_anchors(model_id, image_size), ExportOptions("int8", nms="none"),
                         quantization_aware=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return multiply_adds


def check_variants(model_ids: Sequence[str], variants: Sequence[dict]) -> list:
    """The (model, options) pairs to build, by model then variant: every variant of each model whose
    family takes all its options (SSDLite takes none: it is benchmarked as ``paper``, the
    reference); a variant that no model takes is an error, so nothing is dropped without a word."""
    from mobile_spinenet.zoo import family_of

    pairs, unused = [], []
    for options in variants:
        takers = [m for m in model_ids if set(options) <= family_of(m).options]
        if options and not takers:
            unused.append(variant_label(options))
        for model_id in takers:
            if (model_id, options) not in pairs:
                pairs.append((model_id, options))
    if unused:
        raise ValueError(f"--variants: no model of --models takes {', '.join(unused)}")
    return sorted(pairs, key=lambda pair: (list(model_ids).index(pair[0]), list(variants).index(pair[1])))


def bench_variants(model_ids: Sequence[str], variants: Sequence[dict], image_size: int = 256, threads=(1, 2),
                   runs: int = 50, rounds: int = 3, reference: Optional[str] = None, progress=None,
                   keep: Optional[str] = None) -> list:
    """One row per (model, variant): int8 size, multiply-adds, median ms and ns per multiply-add per
    thread count, the ratio of that to ``reference``'s (a model id of ``model_ids``, its paper
    variant) and what XNNPACK took. ``keep``: a folder to keep the files in (e.g. for
    ``benchmark --profile``), named ``<model>_<variant>.tflite``."""
    from mobile_spinenet.eval.benchmark import benchmark_interleaved

    pairs = check_variants(list(model_ids), variants)
    if reference is not None and reference not in model_ids:
        raise ValueError(f"--reference {reference} is not one of --models")
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as temp:
        folder = keep or temp
        os.makedirs(folder, exist_ok=True)
        paths, macs = [], []
        for n, (model_id, options) in enumerate(pairs):
            path = os.path.join(folder, f"{model_id}_{variant_label(options)}.tflite".replace("=", "-").replace("+", "_"))
            if progress:
                progress(f"[{n + 1}/{len(pairs)}] building and converting {model_id} {variant_label(options)}")
            macs.append(int8_file(model_id, options, image_size, path))
            paths.append(path)
        measured = benchmark_interleaved(paths, threads, runs, 5, rounds)
        rows = [{"model": model_id, "variant": variant_label(options), "options": options, "image_size": image_size,
                 "mb": os.path.getsize(path) / 1e6, "multiply_adds": mac,
                 "median_ms": {entry["threads"]: entry["median_ms"] for entry in measured[path]},
                 "round_medians_ms": {entry["threads"]: entry["round_medians_ms"] for entry in measured[path]},
                 "delegation": measured[path][0]["delegation"]}
                for (model_id, options), path, mac in zip(pairs, paths, macs)]
    for row in rows:
        row["ns_per_multiply_add"] = {t: ms * 1e6 / row["multiply_adds"] for t, ms in row["median_ms"].items()}
    base = next((r for r in rows if r["model"] == reference and not r["options"]), None)
    for row in rows:
        row["ratio_to_reference"] = ({t: v / base["ns_per_multiply_add"][t] for t, v in row["ns_per_multiply_add"].items()}
                                     if base else None)
    return rows


def format_variant_bench(rows: list, reference: Optional[str] = None) -> str:
    """A markdown table of :func:`bench_variants` rows."""
    from mobile_spinenet.eval.benchmark import describe_delegation

    threads = list(rows[0]["median_ms"]) if rows else []
    ratio = [f"x {reference}, {t} thr" for t in threads] if reference else []
    lines = ["| model | variant | int8 MB | M multiply-adds | " + " | ".join(f"ms, {t} thr" for t in threads) + " | "
             + " | ".join(f"ns/MAC, {t} thr" for t in threads) + (" | " + " | ".join(ratio) if ratio else "")
             + " | XNNPACK |",
             "|" + "---|" * (5 + 2 * len(threads) + len(ratio))]
    for row in rows:
        cells = [row["model"], row["variant"], f"{row['mb']:.2f}", f"{row['multiply_adds'] / 1e6:.0f}"]
        cells += [f"{row['median_ms'][t]:.2f}" for t in threads]
        cells += [f"{row['ns_per_multiply_add'][t]:.3f}" for t in threads]
        if ratio:
            cells += [f"{row['ratio_to_reference'][t]:.2f}" if row["ratio_to_reference"] else "" for t in threads]
        cells.append(describe_delegation(row["delegation"]).removeprefix("XNNPACK: "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
