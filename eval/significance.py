"""Is a difference in AP real? Means and sample standard deviations of the AP a model reaches over
seeds (``bench seeds`` records them), and the rule the reports apply: a difference under two
standard deviations of the difference is not significant."""
from __future__ import annotations

import json
import math
from typing import Optional

MEASURES = ("tflite_AP", "tflite_AP50", "keras_AP")  # per (model, seed) in seeds.json
WEIGHTS_KEY = "float_weights"  # in seeds.json: {model: weights_digest of the float run its seeds fine-tuned}


def mean_and_sd(values: list) -> tuple:
    """Mean and sample standard deviation (n - 1); sd is None for fewer than two values."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def spread_of(record: dict) -> dict:
    """``{model: {measure: {"mean", "sd", "n"}}}`` of a ``seeds.json`` record."""
    spread = {}
    for model, runs in record.get("runs", {}).items():
        for measure in MEASURES:
            values = [run[measure] for run in runs.values()]
            if values:
                mean, sd = mean_and_sd(values)
                spread.setdefault(model, {})[measure] = {"mean": mean, "sd": sd, "n": len(values)}
    return spread


def weights_status(record: dict, model: str, digest: str) -> str:
    """Whether ``record``'s seeds of ``model`` fine-tuned the float weights ``digest``: ``"same"``,
    ``"other"``, or ``"unnamed"`` (a seeds.json from before the weights were recorded)."""
    recorded = record.get(WEIGHTS_KEY, {}).get(model)
    if recorded is None:
        return "unnamed"
    return "same" if recorded == digest else "other"


def spread_for_weights(record: dict, weights: dict) -> tuple:
    """``(spread, notes)``: :func:`spread_of` a ``seeds.json`` record without the models whose seeds
    fine-tuned other float weights than ``weights`` ({model: ``weights_digest`` of the float run
    compared}), and one note per model whose spread was left out or whose weights the record does
    not name (written before it recorded them; used as it is)."""
    spread = spread_of(record)
    notes = []
    for model, digest in weights.items():
        status = weights_status(record, model, digest) if model in spread else "same"
        if status == "unnamed":
            notes.append(f"{model}: the seed spread does not name the float weights it was measured on "
                         f"(a seeds.json from before they were recorded); used as it is")
        elif status == "other":
            del spread[model]
            notes.append(f"{model}: the seed spread was measured on other float weights "
                         f"({record[WEIGHTS_KEY][model]}; this run's are {digest}); not used")
    return spread, notes


def significance(a: float, sd_a: Optional[float], b: float, sd_b: Optional[float]) -> dict:
    """The difference ``a - b``, its threshold (2 x the combined sd of two independent figures)
    and whether it exceeds it (None when a spread is unknown)."""
    if sd_a is None or sd_b is None:
        return {"difference": a - b, "threshold": None, "significant": None}
    threshold = 2.0 * math.sqrt(sd_a ** 2 + sd_b ** 2)
    return {"difference": a - b, "threshold": threshold, "significant": abs(a - b) > threshold}


def read_seeds(path: str) -> dict:
    """A ``seeds.json`` written by :func:`seed_spread`; a clear error otherwise."""
    try:
        with open(path) as f:
            record = json.load(f)
    except OSError as error:
        raise ValueError(f"--seed-spread {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--seed-spread {path} is not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(record, dict) or not isinstance(record.get("runs"), dict):
        raise ValueError(f"--seed-spread {path} is not a seeds.json of `mobile-spinenet bench seeds` (no \"runs\")")
    weights = record.get(WEIGHTS_KEY, {})
    if not isinstance(weights, dict) or not all(isinstance(v, str) for v in weights.values()):
        raise ValueError(f"--seed-spread {path}: \"float_weights\" must map model ids to weight digests")
    return record
