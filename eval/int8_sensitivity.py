"""``mobile-spinenet bench int8-sensitivity``: which layers of a trained detector lose its AP to int8.

The quantization-aware copy of the float run is calibrated as the post-training int8 export
calibrates it (BN frozen, the median of batch ranges; :mod:`mobile_spinenet.quantization.calibration`)
once with every layer quantized and once per *group* with that group's layers left float
(``--float-layers``), and each fake-quantized Keras model is scored on the val set. A group's
"recovered" AP is how much of the int8 loss comes back when it stays float. No fine-tune and no
conversion: each group takes about 1.5 minutes for SpineNet-49xxs at 256 px. The file of a chosen
group is then made with ``export --float-layers`` (its AP and latency are the file's own).

The groups default to the layers' name prefixes (``stem``, ``block2`` ... ``endpoint``,
``boxes``, ``classes`` for SpineNet); ``--group NAME=PATTERNS`` chooses others. Results are
written to ``OUT`` after every group; running again with the same settings does only what is
missing."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from mobile_spinenet.io_utils import write_json_atomically

FLOAT, ALL_INT8 = "(float model)", "(every layer int8)"


@dataclass(frozen=True)
class SensitivityOptions:
    run: str  # a finished float detection run
    data: Optional[str] = None  # calibration images (default: the run's training data)
    val: Optional[str] = None  # scored images (default: the run's val data)
    out: Optional[str] = None  # results JSON (resumable)
    groups: tuple = ()  # ((name, (pattern, ...)), ...); default: name_prefix_groups
    calib_images: int = 256
    calib_seed: int = 0
    val_images: Optional[int] = None  # None: the whole val set

    def settings(self) -> dict:
        """What the recorded figures depend on (a results file of other settings is not resumed)."""
        record = asdict(self)
        return {key: record[key] for key in ("run", "data", "val", "calib_images", "calib_seed", "val_images")}


def parse_group(text: str) -> tuple:
    """``"head=boxes*,classes*"`` -> ``("head", ("boxes*", "classes*"))``."""
    name, _, patterns = text.partition("=")
    parts = tuple(p.strip() for p in patterns.split(",") if p.strip())
    if not name.strip() or not parts:
        raise ValueError(f"--group takes NAME=PATTERN[,PATTERN...], got {text!r}")
    return name.strip(), parts


def name_prefix_groups(model) -> tuple:
    """One group per layer-name prefix (the part before the first ``_``), in the model's order, as
    the patterns that match exactly its layers (``block1_*`` and not ``block10_conv``)."""
    names = [layer.name for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
    groups = []
    for prefix in dict.fromkeys(name.split("_")[0] for name in names):
        patterns = [f"{prefix}_*"] if any(name.startswith(prefix + "_") for name in names) else []
        groups.append((prefix, tuple(patterns + ([prefix] if prefix in names else []))))
    return tuple(groups)


def int8_sensitivity(options: SensitivityOptions, progress: Callable[[str], None] = print) -> dict:
    """Score the float model, the all-int8 model and one model per group left float; returns (and
    writes to ``options.out``) ``{"settings", "rows": [{group, patterns, float_layers, AP, AP50}]}``."""
    import json

    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.detector_eval import evaluate_predictor, keras_predictor
    from mobile_spinenet.quantization.calibration import CalibrationOptions, calibrate_for_int8, detection_batches
    from mobile_spinenet.quantization.qat import float_layer_names, quantizable_model
    from mobile_spinenet.training.runs import SOURCES_FILE, open_run, read_sources

    run = open_run(options.run)
    if run.config.task != "detection" or run.is_qat:
        raise ValueError(f"{options.run} is not a float detection run: int8 sensitivity scores detectors "
                         f"before QAT")
    sources = read_sources(options.run)
    data, val = options.data or sources.get("train"), options.val or sources.get("val")
    if not data or not val:
        raise ValueError(f"{options.run} records no {'training' if not data else 'val'} data ({SOURCES_FILE}); "
                         f"pass --{'data' if not data else 'val'}")
    settings = {**options.settings(), "data": data, "val": val}
    record = {"settings": settings, "rows": []}
    if options.out and os.path.isfile(options.out):
        with open(options.out) as f:
            previous = json.load(f)
        if previous.get("settings") != settings:
            raise ValueError(f"{options.out} holds figures of other settings ({previous.get('settings')}); "
                             f"choose another --out")
        record = previous
    done = {(row["group"], tuple(row["patterns"])) for row in record["rows"]}  # a group given other patterns reruns
    train, val_set = read_dataset(data, label_map=run.label_map), read_dataset(val, label_map=run.label_map)
    float_model, anchors, size = run.model(), run.anchors(), run.image_size
    nms, resize = run.nms_config(), run.config.resize
    unrolled = quantizable_model(run.config.model, float_model, **run.build_kwargs())  # the names --float-layers sees
    groups = options.groups or name_prefix_groups(unrolled)
    for _, patterns in groups:  # every pattern must name layers, before minutes of work
        float_layer_names(unrolled, patterns)

    def score(model, group: str, patterns: tuple, count: int) -> None:
        metrics, _ = evaluate_predictor(keras_predictor(model, anchors, nms), val_set, size,
                                        max_images=options.val_images, resize=resize)
        row = {"group": group, "patterns": list(patterns), "float_layers": count,
               "AP": 100 * metrics["AP"], "AP50": 100 * metrics["AP50"]}
        record["rows"].append(row)
        if options.out:
            write_json_atomically(options.out, record)
        progress(f"{group}: AP {row['AP']:.2f}, AP50 {row['AP50']:.2f} ({count} layers float)")

    if (FLOAT, ("*",)) not in done:
        score(float_model, FLOAT, ("*",), len(unrolled.layers) - 1)
    for group, patterns in ((ALL_INT8, ()), *groups):
        if (group, tuple(patterns)) in done:
            continue
        progress(f"== {group}: {', '.join(patterns) or 'no layer'} float, calibrating on {options.calib_images} images")
        calibration = CalibrationOptions(data=data, images=options.calib_images, seed=options.calib_seed,
                                         float_layers=patterns)  # the post-training int8 export's own
        calibrated = calibrate_for_int8(run, float_model, calibration,
                                        detection_batches(train, size, resize, seed=options.calib_seed))
        score(calibrated.model, group, patterns, len(float_layer_names(unrolled, patterns)))
    return record


def format_sensitivity(record: dict) -> str:
    """The rows as a markdown table, with the AP each group's float layers recover."""
    rows = {row["group"]: row for row in record["rows"]}
    if FLOAT not in rows or ALL_INT8 not in rows:
        return "incomplete: the float and all-int8 rows are missing"
    full, loss = rows[FLOAT]["AP"], rows[FLOAT]["AP"] - rows[ALL_INT8]["AP"]
    lines = ["| layers left float | patterns | layers | AP | AP50 | AP - float | recovered of the int8 loss |",
             "|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        recovered = row["AP"] - rows[ALL_INT8]["AP"]
        share = f"{recovered:+.2f} ({100 * recovered / loss:.0f}%)" if loss > 0 and row["group"] != FLOAT else "–"
        lines.append(f"| {row['group']} | {', '.join(row['patterns']) or '–'} | {row['float_layers']} | "
                     f"{row['AP']:.2f} | {row['AP50']:.2f} | {row['AP'] - full:+.2f} | {share} |")
    settings = record["settings"]
    lines.append(f"\nFake-quantized Keras models, median calibration on {settings['calib_images']} images (seed "
                 f"{settings['calib_seed']}), no fine-tune; AP in points on "
                 f"{settings['val_images'] or 'all'} val images. Another calibration sample moves a row by a few "
                 f"tenths, so differences that small are noise; check a choice with `export --float-layers`.")
    return "\n".join(lines)
