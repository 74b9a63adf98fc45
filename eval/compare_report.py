"""The comparison report of ``mobile-spinenet compare``: one markdown table (with the paper's
Table 9 as reference rows), the SpineNet vs MobileNetV3-SSDLite latency-per-multiply-add ratios,
two plots (AP vs multiply-adds, AP vs int8 latency) and ``report.json`` with every figure."""
from __future__ import annotations

import io
import os
from typing import Optional

from mobile_spinenet.eval.latency_match import curves, frontier, matched_latency, row_family, undecided
from mobile_spinenet.io_utils import write_atomically, write_json_atomically

# Table 9's like-for-like pairs: SpineNet and the MobileNetV3-SSDLite of about the same multiply-adds.
PAIRS = (("spinenet49xxs", "mnv3_small_ssdlite"), ("spinenet49xs", "mnv3_large_ssdlite"))


def _latency(result: dict, threads: int, key: str = "benchmark") -> Optional[float]:
    for entry in result.get(key, ()):
        if entry["threads"] == threads:
            return entry["median_ms"]
    return None


def table_rows(results: list, threads: tuple, spread: Optional[dict] = None) -> list:
    """One flat dict per model with the report's columns (AP in points, 0..100); ``spread``
    (:func:`~mobile_spinenet.eval.significance.spread_of` of a ``bench seeds`` record) adds each
    model's int8 AP standard deviation over seeds."""
    from mobile_spinenet.eval.entries import model_id_of
    from mobile_spinenet.registry import family_of

    rows = []
    for r in results:
        external = r.get("external")  # a file made elsewhere (--external): no training, counts or Keras AP
        seeds = None if external else (spread or {}).get(r["model"], {}).get("tflite_AP")
        madds = r["counts"]["multiply_adds"]
        madds_b = madds / 1e9 if madds else None
        latency = {t: _latency(r, t) for t in threads}
        network = {t: _latency(r, t, "benchmark_raw") for t in threads}  # the same file without post-processing
        first = latency[threads[0]]
        model_id = None if external else r.get("model_id") or model_id_of(r["model"])
        rows.append({
            "model": r["model"], "model_id": model_id,
            "family": external["family"] if external else family_of(model_id).display,
            "external": external["description"] if external else None,
            "image_size": r["counts"]["image_size"],
            "params_m": r["counts"]["params"] / 1e6 if r["counts"]["params"] else None,
            "multiply_adds_b": madds_b, "float_ap": r["float"]["AP"] if "float" in r else None,
            "float_ap50": r["float"]["AP50"] if "float" in r else None,
            "int8_ap": r["int8"]["tflite_AP"], "int8_ap50": r["int8"]["tflite_AP50"], "int8_passed": r["int8"]["passed"],
            "int8_ap_sd": seeds["sd"] if seeds else None, "int8_ap_seeds": seeds["n"] if seeds else None,
            "ptq_ap": r["ptq"]["tflite_AP"] if "ptq" in r else None, "ptq_mb": r["ptq"]["mb"] if "ptq" in r else None,
            "fp32_mb": r["fp32"]["mb"] if "fp32" in r else None, "qat_keras_ap": r["int8"]["keras_AP"],
            "fp32_ap": r["fp32"]["tflite_AP"] if "fp32" in r else None,
            "ptq_passed": r["ptq"]["passed"] if "ptq" in r else None,
            "ptq_agreement": r["ptq"].get("agreement") if "ptq" in r else None,
            "int8_agreement": r["int8"].get("agreement"),
            "int8_mb": r["int8"]["mb"], "latency_ms": latency, "network_ms": network,
            "ap_per_ms": r["int8"]["tflite_AP"] / first if first else None,
            "ms_per_gmac": {t: (v / madds_b if v and madds_b else None) for t, v in latency.items()},
            "delegation": next((e["delegation"] for e in r["benchmark"] if "delegation" in e), None),
            "train_epochs": r["training"]["epochs"] if "training" in r else None,
            "qat_epochs": r["qat"]["epochs"] if "qat" in r else None, "minutes": r.get("minutes", {}),
        })
    return rows


def pair_ratios(rows: list, threads: tuple) -> list:
    """For each Table 9 pair present: SpineNet's int8 ms per multiply-add over SSDLite's, per thread count."""
    by_model = {row["model"]: row for row in rows}
    ratios = []
    for spine, ssd in PAIRS:
        if spine in by_model and ssd in by_model:
            a, b = by_model[spine], by_model[ssd]
            ratios.append({"spinenet": spine, "ssdlite": ssd, "multiply_add_ratio": a["multiply_adds_b"] / b["multiply_adds_b"],
                           "latency_ratio": {t: a["latency_ms"][t] / b["latency_ms"][t] for t in threads},
                           "ms_per_gmac_ratio": {t: a["ms_per_gmac"][t] / b["ms_per_gmac"][t] for t in threads},
                           "network_ms_per_gmac_ratio": {
                               t: (a["network_ms"][t] / a["multiply_adds_b"]) / (b["network_ms"][t] / b["multiply_adds_b"])
                               if a["network_ms"][t] and b["network_ms"][t] else None for t in threads}})
    return ratios


def pair_significance(rows: list) -> list:
    """For each Table 9 pair present: the int8 AP difference and whether it exceeds two standard
    deviations of the difference (from the models' spreads over seeds; None when one is unknown)."""
    from mobile_spinenet.eval.significance import significance

    by_model = {row["model"]: row for row in rows}
    found = []
    for spine, ssd in PAIRS:
        if spine in by_model and ssd in by_model:
            a, b = by_model[spine], by_model[ssd]
            found.append({"spinenet": spine, "ssdlite": ssd, "spinenet_ap": a["int8_ap"], "ssdlite_ap": b["int8_ap"],
                          **significance(a["int8_ap"], a["int8_ap_sd"], b["int8_ap"], b["int8_ap_sd"])})
    return found


def _verdict(pair: dict) -> str:
    if pair["significant"] is None:
        return ("unknown: no seed spread of these float weights (measure it with `mobile-spinenet bench seeds` "
                "and pass --seed-spread)")
    return "**significant**" if pair["significant"] else "not significant (under 2 sd)"


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def training_sentence(settings: dict) -> str:
    """How the float and QAT models came about: trained here for the budget, or reused runs."""
    reused = settings.get("reused_runs") or {}
    trained = (f"recipe `{settings['recipe']}` at {settings['image_size']} px, {settings['budget_minutes']:g} min of "
               f"float training (a throughput probe turns it into epochs), then QAT for {settings['qat_share']:g} of "
               f"its float epochs")
    if not reused:
        return f"Every model: {trained}."
    runs = ", ".join(f"`{path}`" for path in reused.values())
    text = (f"Float models: the finished runs {runs}, reused as they are (their own recipe and epochs, "
            f"the table's epochs column); QAT fine-tunes from them for the epochs in brackets (a QAT run found "
            f"beside a float run is reused too).")
    if len(reused) < settings.get("models", len(reused)):
        text += f" The other models: {trained}."
    return text


def quantization_section(rows: list) -> list:
    """What int8 costs each model, when ``--extra-exports`` added the PTQ and/or fp32 files:
    float, PTQ int8 and QAT int8 AP side by side, the drops, detection agreement and sizes."""
    if not any(row.get("ptq_ap") is not None or row.get("fp32_ap") is not None for row in rows):
        return []

    def drop(value, row):
        return "–" if value is None else f"{value - row['float_ap']:+.2f}"

    def agreement(value):
        return "–" if value is None else f"{100 * value:.1f}%"

    lines = ["## Float, PTQ int8 and QAT int8 AP", "",
             "Every file scored on the val set by its own verification against its Keras model (agreement: the "
             "share of the Keras model's confident detections the file finds). PTQ: post-training int8 of the float "
             "model, calibrated on the training images; QAT: the int8 file above.", "",
             "| model | float AP (Keras) | fp32 file AP | PTQ int8 AP | PTQ - float | PTQ agreement | QAT int8 AP "
             "(QAT Keras) | QAT - float | QAT agreement | fp32 MB | PTQ MB | QAT MB |",
             "|" + "---|" * 12]
    for row in rows:
        if row.get("external"):
            continue  # compared as it is: no float model, PTQ or QAT of it here
        rejected = " (rejected)" if row.get("ptq_passed") is False else ""
        ptq = "–" if row.get("ptq_ap") is None else f"{row['ptq_ap']:.2f}{rejected}"
        lines.append(f"| {row['model']} | {row['float_ap']:.2f} | {_fmt(row.get('fp32_ap'))} | {ptq} | "
                     f"{drop(row.get('ptq_ap'), row)} | {agreement(row.get('ptq_agreement'))} | "
                     f"{row['int8_ap']:.2f} ({row['qat_keras_ap']:.2f}) | {drop(row['int8_ap'], row)} | "
                     f"{agreement(row.get('int8_agreement'))} | {_fmt(row.get('fp32_mb'))} | {_fmt(row.get('ptq_mb'))} | "
                     f"{row['int8_mb']:.2f} |")
    return lines + [""]


def markdown(rows: list, ratios: list, settings: dict, significant: Optional[list] = None) -> str:
    from mobile_spinenet.paper import TABLE_9

    threads = tuple(settings["threads"])
    t_cols = " | ".join(f"int8 ms, {t} thr" for t in threads) + " | " + " | ".join(f"network ms, {t} thr" for t in threads)
    lines = [
        "# SpineNet vs MobileNetV3-SSDLite",
        "",
        f"Data: `{settings['data']}` (train), `{settings['val']}` (val). {training_sentence(settings)} "
        f"Then int8 TFLite from the QAT model with `TFLite_Detection_PostProcess` in the graph, verified against Keras. AP: COCO AP (pycocotools) in points on "
        f"the val set; int8 AP is the exported file's. Latency: median of {settings['bench_runs']} runs, ai-edge-litert "
        f"with XNNPACK, this machine, all files timed together in {settings.get('bench_rounds', 1)} interleaved "
        f"round(s) (the median round is shown). \"int8 ms\" times the verified file (network and post-processing: "
        f"per-class NMS over the anchors scoring >= 0.05, so it grows with the anchor count and the model's "
        f"confidence); \"network ms\" times the same QAT model exported with raw outputs (`--nms none`). AP per ms "
        f"uses the {threads[0]}-thread int8 latency.",
        "",
        f"| model | input | params M | multiply-adds B | float AP | int8 AP | int8 MB | {t_cols} | AP per ms | epochs (QAT) |",
        "|" + "---|" * (9 + 2 * len(threads)),
    ]
    for row in rows:
        flag = " (rejected)" if row["int8_passed"] is False else ""
        latency = " | ".join(_fmt(row["latency_ms"][t]) for t in threads) + " | " + \
            " | ".join(_fmt(row["network_ms"][t]) for t in threads)
        sd = "" if row.get("int8_ap_sd") is None else f" ± {row['int8_ap_sd']:.2f}"
        epochs = "–" if row["train_epochs"] is None else f"{row['train_epochs']:g} ({row['qat_epochs']:g})"
        name = f"{row['model']} (external)" if row.get("external") else row["model"]
        lines.append(f"| {name} | {row['image_size']} | {_fmt(row['params_m'])} | {_fmt(row['multiply_adds_b'], 3)} | "
                     f"{_fmt(row['float_ap'])} | {row['int8_ap']:.2f}{sd}{flag} | {row['int8_mb']:.2f} | {latency} | "
                     f"{_fmt(row['ap_per_ms'], 3)} | {epochs} |")
    blank = " | ".join("–" for _ in range(2 * len(threads)))
    for ref in TABLE_9:
        if ref.model_id in {row["model"] for row in rows}:
            lines.append(f"| *paper Table 9: {ref.model_id}* | {ref.image_size} | {ref.params_m:.2f} | "
                         f"{ref.multiply_adds_b:.2f} | *{ref.ap:.1f} COCO* | – | – | {blank} | – | – |")
    lines += ["", "Reference rows: the paper's COCO test-dev figures (80 classes, its input sizes), for scale; the "
              "rows above them are this run (demo data, its classes and input size).", ""]
    external = [row for row in rows if row.get("external")]
    if external:
        lines += ["External files (`--external`), compared as they are: nothing trained, fine-tuned or exported "
                  "here; \"int8 AP\" is the file's AP on the same val images (its labels matched to the val set's "
                  "by name), \"int8 ms\" the file timed in the same interleaved rounds (a file without an in-graph "
                  "post-processing op is timed without its host-side NMS); params and multiply-adds are not read "
                  "from files. Each toolkit's files make one curve below.", ""]
        lines += [f"- {row['model']}: {row['external']}" for row in external] + [""]
    if any(row.get("int8_ap_sd") is not None for row in rows):
        lines += [f"int8 AP ± sd: the sample standard deviation of the model's int8 AP over reruns of the QAT "
                  f"fine-tune with other seeds (`bench seeds`, {settings.get('seed_spread', 'seeds.json')}).", ""]
    if settings.get("seed_spread_notes"):
        lines += ["Seed spreads checked against the float weights compared:", ""]
        lines += [f"- {note}" for note in settings["seed_spread_notes"]] + [""]
    if significant:
        lines += ["## Are the AP differences real?", "",
                  "| pair | SpineNet int8 AP | SSDLite int8 AP | difference | 2 sd of the difference | verdict |",
                  "|---|---|---|---|---|---|"]
        for pair in significant:
            lines.append(f"| {pair['spinenet']} / {pair['ssdlite']} | {pair['spinenet_ap']:.2f} | "
                         f"{pair['ssdlite_ap']:.2f} | {pair['difference']:+.2f} | {_fmt(pair['threshold'])} | "
                         f"{_verdict(pair)} |")
        lines += ["", "2 sd of the difference: 2 * sqrt(sd_a^2 + sd_b^2), the seed spreads of the two models.", ""]
    if ratios:
        lines += ["## Latency per multiply-add: SpineNet / MobileNetV3-SSDLite (int8, XNNPACK)", "",
                  "| pair | multiply-add ratio | " + " | ".join(f"latency ratio {t} thr" for t in threads) + " | "
                  + " | ".join(f"ms-per-multiply-add ratio {t} thr" for t in threads) + " | "
                  + " | ".join(f"network-only ratio {t} thr" for t in threads) + " |",
                  "|" + "---|" * (2 + 3 * len(threads))]
        for ratio in ratios:
            lines.append(f"| {ratio['spinenet']} / {ratio['ssdlite']} | {ratio['multiply_add_ratio']:.2f} | "
                         + " | ".join(f"{ratio['latency_ratio'][t]:.2f}" for t in threads) + " | "
                         + " | ".join(f"{ratio['ms_per_gmac_ratio'][t]:.2f}" for t in threads) + " | "
                         + " | ".join(f"**{_fmt(ratio['network_ms_per_gmac_ratio'][t])}**" for t in threads) + " |")
        lines += ["", "A ms-per-multiply-add ratio above 1 means each SpineNet multiply-add costs more time on this "
                  "CPU than an SSDLite one; the network-only ratio leaves the post-processing out (multiply-adds "
                  "count the network only).", ""]
    lines += quantization_section(rows)
    lines += matched_latency_section(rows, threads)
    delegated = [row for row in rows if row["delegation"]]
    if delegated:
        from mobile_spinenet.eval.benchmark import describe_delegation

        lines += ["## What XNNPACK takes (int8 files)", "",
                  "Ops left to the builtin kernels split the graph into more delegate partitions and run on one "
                  "thread; `TFLite_Detection_PostProcess` always stays there.", ""]
        lines += [f"- {row['model']}: {describe_delegation(row['delegation'])}" for row in delegated] + [""]
    stages = [s for s in STAGES if any(s in row["minutes"] for row in rows)]
    lines += ["## Where the time went (minutes)", "", "| model | " + " | ".join(stages) + " |",
              "|" + "---|" * (1 + len(stages))]
    for row in rows:
        lines.append(f"| {row['model']} | " + " | ".join(_fmt(row["minutes"].get(s), 1) for s in stages) + " |")
    lines += ["", "– : not run by `compare` (an existing run was reused).", "",
              "![AP vs multiply-adds](ap_vs_multiply_adds.png)", "", "![AP vs int8 latency](ap_vs_latency.png)", ""]
    return "\n".join(lines)


def matched_latency_section(rows: list, threads: tuple) -> list:
    """The report's lines on AP at matched latency (:mod:`mobile_spinenet.eval.latency_match`)."""
    matched = matched_latency(rows, threads)
    if not matched:
        return []
    lines = ["## AP at matched latency: each model against the other families' curves (int8)", "",
             "Each family's models of this run (a model at several input sizes gives several points), joined by "
             "straight lines, give the AP that family reaches at a latency; every model is compared with each other "
             "family's curve at its own latency. Inside a curve: the difference to the interpolated AP, beyond 2 sd "
             "or not (the model's seed spread and the curve's, interpolated from its two neighbours). Outside it "
             "nothing is extrapolated: a model wins or loses there only if it is both faster and more accurate than "
             "the curve's nearest point, or the other way round; else it is undecided.", "",
             "| model | threads | int8 ms | int8 AP | against | its AP at that latency | AP there | difference | "
             "2 sd | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in matched:
        difference = "–" if entry["difference"] is None else f"{entry['difference']:+.2f}"
        lines.append(f"| {entry['model']} | {entry['threads']} | {entry['latency_ms']:.2f} | {entry['int8_ap']:.2f} | "
                     f"{entry['against']} | {entry['reference']} | {entry['reference_ap']:.2f} | {difference} | "
                     f"{_fmt(entry['threshold'])} | {entry['verdict']} |")
    left = undecided(matched)
    lines += [""]
    if left:
        lines += ["Undecided against every other family's curve (outside all of them, neither dominating nor "
                  "dominated): " + ", ".join(f"{model} at {t} thread(s)" for model, t in left) + "."]
    else:
        lines += ["Every model is decided against at least one other family's curve at every thread count."]
    lines += [""] + [f"Best AP for its latency at {t} thread(s) (no other model is both faster and more accurate), "
                     f"fastest first: {', '.join(frontier(rows, t))}." for t in threads]
    spread = [row for row in rows if row.get("int8_ap_sd") is not None]
    lines += ["", ("A difference within 2 sd is not a result; the spread is the QAT fine-tune's over seeds, not a "
                   "training from scratch's." if spread else "One run, no seed spread: a difference of a point or "
                   "less may be noise (docs/benchmarks.md gives the spread measured for the Table 9 pairs)."), ""]
    return lines


STAGES = ("train", "float_eval", "qat", "export_int8", "export_raw", "export_ptq", "export_fp32", "eval", "benchmark")


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _scatter(axis, xs, ys, names, **style):
    axis.scatter(xs, ys, **style)
    for x, y, name in zip(xs, ys, names):
        axis.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)


def family_colors() -> dict:
    """A plot colour per registered family (SpineNet red and MobileNetV3-SSDLite blue, as before)."""
    from mobile_spinenet.registry import FAMILIES

    palette = ["tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple"]
    fixed = {"SpineNet": "tab:red", "MobileNetV3-SSDLite": "tab:blue"}
    free = [c for c in palette if c not in fixed.values()]
    return {f.display: fixed.get(f.display) or free.pop(0) for f in FAMILIES.values()}


def plots(rows: list, threads: tuple) -> dict:
    """``{file name: png bytes}``: AP vs multiply-adds (this run and Table 9), AP vs int8 latency."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mobile_spinenet.paper import TABLE_9
    from mobile_spinenet.registry import family_of

    colors = family_colors()
    figure, (ours, paper) = plt.subplots(1, 2, figsize=(12, 4.5))
    for family, color in colors.items():
        mine = [r for r in rows if row_family(r) == family]
        _scatter(ours, [r["multiply_adds_b"] for r in mine], [r["int8_ap"] for r in mine], [r["model"] for r in mine],
                 color=color, label=f"{family}, int8")
        ours.scatter([r["multiply_adds_b"] for r in mine], [r["float_ap"] for r in mine], color=color, marker="x",
                     label=f"{family}, float")
        refs = [r for r in TABLE_9 if family_of(r.model_id).display == family]
        _scatter(paper, [r.multiply_adds_b for r in refs], [r.ap for r in refs], [r.model_id for r in refs],
                 color=color, label=family)
    ours.set(title="this run (demo data)", xlabel="multiply-adds (B)", ylabel="AP")
    paper.set(title="paper Table 9 (COCO test-dev)", xlabel="multiply-adds (B)", ylabel="AP")
    ours.legend(fontsize=8)
    paper.legend(fontsize=8)
    files = {"ap_vs_multiply_adds.png": _png(figure)}

    figure, axis = plt.subplots(figsize=(8, 5))
    for t, (marker, line) in zip(threads, (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."))):
        for family, members in curves(rows, t).items():
            color = colors.get(family, "tab:gray")
            xs, ys = [r["latency_ms"][t] for r in members], [r["int8_ap"] for r in members]
            axis.plot(xs, ys, color=color, marker=marker, linestyle=line, label=f"{family}, {t} thread(s)")
            known = [(x, y, r["int8_ap_sd"]) for x, y, r in zip(xs, ys, members) if r.get("int8_ap_sd") is not None]
            if known:
                axis.errorbar([k[0] for k in known], [k[1] for k in known], yerr=[2 * k[2] for k in known], fmt="none",
                              ecolor=color, capsize=3, alpha=0.6)
            for x, y, r in zip(xs, ys, members):
                if t == threads[0]:
                    axis.annotate(r["model"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set(title="int8 AP vs latency, one line per family and thread count (error bars: 2 sd over seeds)",
             xlabel="median latency (ms, ai-edge-litert, XNNPACK)", ylabel="int8 AP")
    axis.title.set_fontsize(9)
    axis.legend(fontsize=8)
    files["ap_vs_latency.png"] = _png(figure)
    return files


def write_report(out: str, results: list, settings: dict, spread: Optional[dict] = None) -> str:
    """Write ``report.md``, ``report.json`` and the plots into ``out``; returns the report's path.
    ``spread``: the models' AP spreads over seeds (see :func:`table_rows`)."""
    threads = tuple(settings["threads"])
    rows = table_rows(results, threads, spread)
    ratios = pair_ratios(rows, threads)
    significant = pair_significance(rows)
    for name, png in plots(rows, threads).items():
        write_atomically(os.path.join(out, name), png)
    write_json_atomically(os.path.join(out, "report.json"), {"settings": settings, "rows": rows, "ratios": ratios,
                                                            "significance": significant,
                                                            "matched_latency": matched_latency(rows, threads),
                                                            "results": results})
    path = os.path.join(out, "report.md")
    write_atomically(path, markdown(rows, ratios, settings, significant))
    return path
