"""``mobile-spinenet bench seeds``: how far a model's int8 AP moves when the short QAT fine-tune is
rerun with another seed (data order, augmentation, initial quantizer state), so a report can tell
a difference between models from noise.

For each model and seed: QAT from the model's trained float run, a verified int8 export, and the
Keras and int8 AP of it on the val set. Every finished (model, seed) is recorded in
``OUT/seeds.json`` at once; running the command again does only what is missing. The summary is a
mean and a sample standard deviation per model (``spread_of``), which ``compare --seed-spread``
reads to mark differences under two standard deviations as not significant."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from mobile_spinenet.eval.significance import MEASURES, WEIGHTS_KEY, read_seeds, spread_of, weights_status
from mobile_spinenet.io_utils import write_atomically, write_json_atomically

SEEDS_FILE = "seeds.json"
REPORT_FILE = "seeds.md"
# settings a seeds.json written before they existed was measured at
SETTING_DEFAULTS = {"freeze_bn": False, "float_layers": []}


@dataclass(frozen=True)
class SeedSpreadOptions:
    runs_from: str  # a folder of finished float runs, one per entry name (e.g. checkpoints/demo)
    data: str  # a folder with train/ and val/, or the training set when val is given
    out: str
    models: tuple
    seeds: tuple = (1, 2, 3)
    qat_epochs: float = 0.25
    freeze_bn: bool = False  # QAT with the float run's BN layers frozen (QatOptions.freeze_bn)
    float_layers: tuple = ()  # layer-name patterns left float in every model (QatOptions.float_layers)
    val: Optional[str] = None
    verify_images: Optional[int] = None  # None: the whole val set
    show_progress: bool = True

    def validate(self) -> "SeedSpreadOptions":
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds needs at least two different seeds for a spread, got {list(self.seeds)}")
        if self.qat_epochs <= 0:
            raise ValueError(f"--qat-epochs must be positive, got {self.qat_epochs}")
        for model in self.models:  # a model id, ID@SIZE or any run folder's name (eval.entries)
            if not os.path.isfile(os.path.join(self.runs_from, model, "run.json")):
                raise ValueError(f"--runs-from {self.runs_from} has no finished run {model}/ (run.json missing); "
                                 f"train it first or leave it out of --models")
        return self

    def check_float_layers(self) -> None:
        """Refuse, before any work, a --float-layers pattern that matches no layer of a model."""
        from mobile_spinenet.quantization.qat import check_float_layers
        from mobile_spinenet.training.runs import open_run

        for model in self.models if self.float_layers else ():
            run = open_run(os.path.join(self.runs_from, model))
            try:
                check_float_layers(run.config.model, self.float_layers, **run.build_kwargs())
            except ValueError as error:
                raise ValueError(f"{model}: {error}") from None


def check_float_weights(record: dict, weights: dict, path: str) -> None:
    """Refuse to add seeds of a model whose recorded seeds fine-tuned other float weights (or
    weights a seeds.json written before they were recorded does not name)."""
    for model, digest in weights.items():
        status = weights_status(record, model, digest) if record["runs"].get(model) else "same"
        if status == "same":
            continue
        what = (f"other float weights ({record[WEIGHTS_KEY][model]}; {digest} now)" if status == "other"
                else "float weights it does not name (written before seeds.json recorded them)")
        raise ValueError(f"{path}: the seeds of {model} were measured on {what}; choose another --out")


def format_spread(record: dict) -> str:
    spread = spread_of(record)
    settings = record["settings"]
    lines = ["# Seed spread of the QAT fine-tune", "",
             f"Each model's trained float run from `{settings['runs_from']}`, fine-tuned quantization-aware for "
             f"{settings['qat_epochs']:g} epochs{' with its BN layers frozen' if settings.get('freeze_bn') else ''}"
             f"{float_layers_phrase(settings.get('float_layers'))} "
             f"with seeds {settings['seeds']}, exported to int8 and scored on "
             f"{settings['val_images']} val images (COCO AP in points). sd: sample standard deviation over the seeds.",
             "", "| model | seeds | int8 AP mean | sd | int8 AP50 mean | sd | QAT Keras AP mean | sd |",
             "|---|---|---|---|---|---|---|---|"]
    for model, measures in spread.items():
        cells = []
        for measure in MEASURES:
            m = measures[measure]
            cells += [f"{m['mean']:.2f}", "–" if m["sd"] is None else f"{m['sd']:.2f}"]
        lines.append(f"| {model} | {measures['tflite_AP']['n']} | " + " | ".join(cells) + " |")
    weights = {model: digest for model, digest in record.get(WEIGHTS_KEY, {}).items() if model in spread}
    if weights:
        lines += ["", "Float weights fine-tuned (SHA-256 of `model.weights.h5`, first 16 digits; `compare --seed-spread` "
                  "uses a model's spread only for these weights): "
                  + ", ".join(f"{model} `{digest}`" for model, digest in sorted(weights.items())) + "."]
    return "\n".join(lines) + "\n"


def float_layers_phrase(patterns) -> str:
    if not patterns:
        return ""
    return " and the layers matching " + ", ".join(f"`{p}`" for p in patterns) + " left float (mixed precision)"


def seed_spread(options: SeedSpreadOptions, progress: Callable[[str], None] = print) -> dict:
    """Run what ``OUT/seeds.json`` lacks; returns the record (also written as ``OUT/seeds.md``)."""
    from mobile_spinenet.backend import keras
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.data.readers import split_folders
    from mobile_spinenet.eval.compare import export_verified
    from mobile_spinenet.quantization.qat_run import QatOptions, qat
    from mobile_spinenet.training.runs import weights_digest

    options.validate()
    train_dir, val_dir = split_folders(options.data, options.val)
    path = os.path.join(options.out, SEEDS_FILE)
    record = read_seeds(path) if os.path.isfile(path) else {"runs": {}}
    verify_images = options.verify_images or len(read_dataset(val_dir))
    settings = {"runs_from": os.path.abspath(options.runs_from), "data": os.path.abspath(train_dir),
                "val": os.path.abspath(val_dir), "qat_epochs": options.qat_epochs, "freeze_bn": options.freeze_bn,
                "float_layers": list(options.float_layers), "val_images": verify_images}
    old = record.get("settings")
    if old:
        old = {**SETTING_DEFAULTS, **old}
    if old and {k: old.get(k) for k in settings} != settings:
        changed = ", ".join(k for k in settings if old.get(k) != settings[k])
        raise ValueError(f"{path} was measured with other settings ({changed}); choose another --out")
    weights = {model: weights_digest(os.path.join(options.runs_from, model)) for model in options.models}
    check_float_weights(record, weights, path)  # before any work: seeds of other weights are not one spread
    options.check_float_layers()
    record["settings"] = {**settings, "seeds": sorted({*old.get("seeds", []), *options.seeds}) if old
                          else list(options.seeds)}
    record.setdefault(WEIGHTS_KEY, {}).update(weights)
    for model in options.models:
        float_dir = os.path.join(options.runs_from, model)
        for seed in options.seeds:
            if str(seed) in record["runs"].get(model, {}):
                continue
            qat_dir = os.path.join(options.out, "runs", f"{model}-qat-seed{seed}")
            progress(f"== {model}, seed {seed}: QAT {options.qat_epochs:g} epochs -> {qat_dir}")
            qat(float_dir, train_dir, qat_dir, QatOptions(epochs=options.qat_epochs, seed=seed, resume=True,
                                                           freeze_bn=options.freeze_bn,
                                                           float_layers=tuple(options.float_layers),
                                                           show_progress=options.show_progress))
            keras.backend.clear_session()
            exported = export_verified(qat_dir, os.path.join(options.out, "exports", f"{model}_seed{seed}.tflite"),
                                       "int8", val_dir, verify_images, progress)
            keras.backend.clear_session()
            record["runs"].setdefault(model, {})[str(seed)] = {
                "seed": seed, **{k: exported[k] for k in ("tflite_AP", "tflite_AP50", "keras_AP", "passed",
                                                          "agreement", "images")}}
            write_json_atomically(path, record)
    write_json_atomically(path, record)
    write_atomically(os.path.join(options.out, REPORT_FILE), format_spread(record))
    return record
