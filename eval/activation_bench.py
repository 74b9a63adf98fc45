"""``mobile-spinenet bench activations``: int8 latency of one model built with different
activations (the brief's "measure both before choosing the mobile activation"); the activation
variants of :mod:`mobile_spinenet.eval.latency_variants` (``bench variants``), which says how
each file is built and timed."""
from __future__ import annotations

from typing import Sequence


def bench_activations(model_ids: Sequence[str], activations: Sequence[str], image_size: int = 256,
                      threads=(1, 2), runs: int = 50, rounds: int = 3) -> list:
    """One row per (model, activation): latency medians per thread count and XNNPACK's partitions.
    All files are built first, then timed together in ``rounds`` interleaved passes."""
    from mobile_spinenet.blocks import ACTIVATIONS
    from mobile_spinenet.eval.latency_variants import bench_variants

    unknown = [a for a in activations if a not in ACTIVATIONS]
    if unknown:
        raise ValueError(f"--activations: unknown {', '.join(unknown)}; choose from {', '.join(ACTIVATIONS)}")
    rows = bench_variants(model_ids, [{"activation": a} for a in activations], image_size, threads, runs, rounds)
    return [{**row, "activation": row["options"]["activation"]} for row in rows]


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
