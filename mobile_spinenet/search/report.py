"""What ``mobile-spinenet search`` leaves in OUT besides the study: ``trials.csv`` (every trial),
``pareto.png`` (proxy AP against int8 latency, the front and the target), ``best/`` (the best
architectures as files ``train --spec`` takes) and ``summary.md``. Rewritten after every trial by
the worker that finished it, each file atomically, from the study (the one record)."""
from __future__ import annotations

import csv
import io
import os
import re

from mobile_spinenet.io_utils import write_atomically

COLUMNS = ("trial", "state", "architecture", "proxy_AP", "proxy_AP50", "latency_ms", "latency_ratio", "multiply_adds_M",
           "objective", "minutes", "reused", "retry_of", "worker", "error")
BEST_KEPT = 5
RANK_FILE = re.compile(r"rank[0-9]+_[0-9a-f]+\.yaml")  # the files of best/ that write_outputs owns


def rows_csv(rows: list, columns: tuple) -> str:
    """``rows`` as CSV with ``columns`` (floats to 4 decimals, None as empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else round(row[k], 4) if isinstance(row[k], float) else row[k])
                         for k in columns})
    return buffer.getvalue()


BASELINE_COLUMNS = ("model", "architecture", "proxy_AP", "proxy_AP50", "latency_ms", "latency_ratio", "multiply_adds_M",
                    "objective", "minutes")


def pareto_png(rows: list, front: list, target_ms: float, target: str, baselines: list = ()) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["state"] == "complete"]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.scatter([r["latency_ms"] for r in done], [r["proxy_AP"] for r in done], color="tab:gray", s=18,
                 label=f"trials ({len(done)})")
    axis.plot([r["latency_ms"] for r in front], [r["proxy_AP"] for r in front], color="tab:red", marker="o",
              label="Pareto front")
    for r in front:
        axis.annotate(str(r["trial"]), (r["latency_ms"], r["proxy_AP"]), textcoords="offset points", xytext=(3, 3),
                      fontsize=7)
    for b in baselines:
        axis.scatter([b["latency_ms"]], [b["proxy_AP"]], color="black", marker="x", s=40)
        axis.annotate(b["model"], (b["latency_ms"], b["proxy_AP"]), textcoords="offset points", xytext=(3, -9),
                      fontsize=7)
    axis.axvline(target_ms, color="tab:blue", linestyle="--", label=f"target: {target} ({target_ms:.2f} ms)")
    axis.set(xlabel="int8 network latency (ms, this machine's scale)", ylabel="proxy val AP",
             title="SpineNet-Mobile search: proxy AP vs int8 latency")
    axis.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def summary_md(rows: list, best: list, front: list, target_ms: float, options, baselines: list = ()) -> str:
    done = [r for r in rows if r["state"] == "complete"]
    minutes = sum(r["minutes"] or 0 for r in done)
    lines = ["# SpineNet-Mobile search", "",
             f"Base {options.space.base}; objective {options.objective}"
             + (f" (AP x (latency / target)^{options.mnas_weight:g})" if options.objective == "mnas" else "")
             + f"; target {target_ms:.2f} ms ({options.target_ms and 'given' or options.target}, "
             f"{options.latency.threads} thread(s), int8 network, XNNPACK); proxy: {options.proxy.images} training "
             f"images x {options.proxy.epochs:g} epochs at {options.proxy.image_size} px, {options.proxy.val_images} "
             f"val images.", "",
             f"{len(done)} finished trial(s) of {options.trials}, {sum(r['state'] == 'fail' for r in rows)} failed; "
             f"{minutes / 60:.1f} h of trial time.", "",
             "| rank | trial | architecture | proxy AP | latency ms | x target | objective |", "|---|---|---|---|---|---|---|"]
    for rank, r in enumerate(best[:BEST_KEPT], 1):
        lines.append(f"| {rank} | {r['trial']} | `best/rank{rank}_{r['architecture']}.yaml` | {r['proxy_AP']:.2f} | "
                     f"{r['latency_ms']:.2f} | {r['latency_ms'] / target_ms:.2f} | {r['objective']:.3f} |")
    lines += ["", "Pareto front (fastest first): " + ", ".join(
        f"trial {r['trial']} ({r['proxy_AP']:.2f} AP, {r['latency_ms']:.2f} ms)" for r in front), "",
        "![proxy AP vs latency](pareto.png)", ""]
    if baselines:
        lines += ["Baselines (the paper's architectures, same proxy and latency oracle; baselines.csv):", "",
                  "| model | proxy AP | latency ms | x target | objective |", "|---|---|---|---|---|"]
        lines += [f"| {b['model']} | {b['proxy_AP']:.2f} | {b['latency_ms']:.2f} | {b['latency_ms'] / target_ms:.2f} | "
                  + (f"{b['objective']:.3f} |" if b["objective"] is not None else "- |") for b in baselines]
        lines.append("")
    return "\n".join(lines)


def write_outputs(out: str, rows: list, target_ms: float, options, best: list, front: list,
                  baselines: list = ()) -> None:
    write_atomically(os.path.join(out, "trials.csv"), rows_csv(rows, COLUMNS))
    if baselines:
        write_atomically(os.path.join(out, "baselines.csv"), rows_csv(baselines, BASELINE_COLUMNS))
    if any(r["state"] == "complete" for r in rows) or baselines:
        write_atomically(os.path.join(out, "pareto.png"), pareto_png(rows, front, target_ms, options.target, baselines))
    folder = os.path.join(out, "best")
    os.makedirs(folder, exist_ok=True)
    wanted = {f"rank{rank}_{r['architecture']}.yaml": r["architecture"] for rank, r in enumerate(best[:BEST_KEPT], 1)}
    for name, digest in wanted.items():
        source = os.path.join(out, "archs", digest, "architecture.yaml")
        if os.path.isfile(source):
            with open(source, "rb") as f:
                write_atomically(os.path.join(folder, name), f.read())
    for name in os.listdir(folder):
        if RANK_FILE.fullmatch(name) and name not in wanted:  # never another worker's temp file
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:  # another worker removed it first
                pass
    write_atomically(os.path.join(out, "summary.md"), summary_md(rows, best, front, target_ms, options, baselines))
