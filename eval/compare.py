"""``mobile-spinenet compare``: train several detectors with one recipe and one time budget,
QAT-tune them, export verified int8 TFLite files, benchmark them, and write the report.

Every model gets the same wall-clock budget for its float-training stage (a short throughput probe
turns the budget into epochs, so a cheap model trains for more epochs: a compute-matched comparison),
then QAT for a fixed share of its float epochs. Each finished stage is recorded in
``OUT/results/<model>.json``; running the command again resumes at the first missing stage."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

from mobile_spinenet.data.readers import split_folders
from mobile_spinenet.eval.benchmark import INTERLEAVED_ROUNDS
from mobile_spinenet.eval.model_result import ModelResult

DEFAULT_IMAGE_SIZE = 256  # of the models a comparison trains
DEFAULT_MODELS = ("spinenet49xxs", "spinenet49xs", "spinenet49s_mobile", "spinenet49_mobile",
                  "mnv3_small_ssdlite", "mnv3_large_ssdlite")
EXTRA_EXPORTS = ("ptq", "fp32")  # optional exports next to the QAT int8 file


@dataclass
class CompareOptions:
    data: str  # a folder with train/ and val/ (the demo layout), or the training set when val is given
    out: str
    models: tuple = DEFAULT_MODELS  # entry names (eval.entries): ID, ID@SIZE, or a run folder in runs_from
    budget_minutes: float = 5.0  # float training wall-clock per model
    val: Optional[str] = None
    image_size: Optional[int] = None  # models trained here: this size (None: 256); reused runs keep theirs
    recipe: str = "cpu_demo"
    qat_share: float = 0.125  # QAT epochs as a share of the float epochs
    qat_epochs: Optional[float] = None  # a fixed number of QAT epochs instead (for reused, long float runs)
    threads: tuple = (1, 2)
    bench_runs: int = 50
    bench_rounds: int = INTERLEAVED_ROUNDS  # interleaved passes over all int8 files, after every model is exported
    extra_exports: tuple = ()
    runs_from: Optional[str] = None  # a folder of existing runs (<model>/ and <model>-qat/) to reuse
    verify_images: Optional[int] = None  # None: the whole val set
    seed_spread: Optional[str] = None  # seeds.json of `bench seeds`: int8 AP sd per model, significance marks
    external: tuple = ()  # NAME=FILE: detector files made elsewhere, compared as they are (eval/compare_external.py)
    show_progress: bool = True

    def validate(self) -> "CompareOptions":
        self.external_entries()  # clear errors for unknown ids, bad sizes and names given twice
        if self.bench_rounds < 1 or self.bench_runs < 1:
            raise ValueError(f"--rounds and --runs must be at least 1, got {self.bench_rounds} and {self.bench_runs}")
        if self.qat_epochs is not None and self.qat_epochs <= 0:
            raise ValueError(f"--qat-epochs must be positive, got {self.qat_epochs}")
        if self.budget_minutes <= 0:
            raise ValueError(f"--budget must be positive minutes, got {self.budget_minutes}")
        unknown = set(self.extra_exports) - set(EXTRA_EXPORTS)
        if unknown:
            raise ValueError(f"--extra-exports takes {', '.join(EXTRA_EXPORTS)}; got {', '.join(sorted(unknown))}")
        return self

    @property
    def training_size(self) -> int:
        """The input size of the models this comparison trains (an ``ID@SIZE`` entry: its own)."""
        return self.image_size or DEFAULT_IMAGE_SIZE

    def entries(self) -> tuple:
        """The :class:`~mobile_spinenet.eval.entries.Entry` of each name in ``models``."""
        from mobile_spinenet.eval.entries import parse_entries
        return parse_entries(self.models, self.runs_from)

    def external_entries(self) -> tuple:
        """The :class:`~mobile_spinenet.eval.compare_external.ExternalEntry` of each ``--external``
        (after checking the ``--models`` entries, whose names they may not take)."""
        from mobile_spinenet.eval.compare_external import parse_external
        return parse_external(self.external, [entry.name for entry in self.entries()])

    def size_of(self, entry) -> int:
        """The input size ``entry`` is trained at here: its own (``ID@SIZE``), else the training size."""
        return entry.image_size or self.training_size

    def check_reused_sizes(self) -> None:
        """A reused run keeps the size it was trained at; an --image-size that differs is refused
        rather than ignored (before any work)."""
        if self.image_size is None:
            return
        for entry in self.entries():
            if entry.names_its_size:
                continue  # ID@SIZE is compared at its own size
            run_dir = entry.run_dir
            trained_at = entry.image_size if run_dir else self.image_size
            if trained_at != self.image_size:
                raise ValueError(f"--image-size {self.image_size}, but {run_dir} (reused from --runs-from) was "
                                 f"trained at {trained_at} px and is compared at that size; drop "
                                 f"--image-size, or train at {self.image_size} without --runs-from")


def plan_epochs(budget_s: float, images_per_s: float, train_images: int, per_epoch_overhead_s: float) -> float:
    """Epochs that fit ``budget_s`` at the probed throughput (two decimals, at least 0.1)."""
    epoch_s = train_images / images_per_s + per_epoch_overhead_s
    return max(0.1, math.floor(100 * budget_s / epoch_s) / 100)


def _train_float(entry, options: CompareOptions, train_dir: str, val_dir: str, run_dir: str, progress) -> dict:
    from mobile_spinenet.data.pipeline import steps_per_epoch
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.bench import bench_train
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.runs import open_run, sources_record
    from mobile_spinenet.training.trainer import Trainer

    train = read_dataset(train_dir)
    probe = None
    if os.path.isfile(os.path.join(run_dir, "config.yaml")):  # an interrupted run: keep its planned epochs
        config = open_run(run_dir).config
    else:
        model, size = entry.model_id, options.size_of(entry)
        recipe = load_config(model, options.recipe, {"image_size": size})
        started = time.perf_counter()
        batches = steps_per_epoch(train, recipe.batch_size)
        warmup = min(2, batches - 1)  # the first step traces the graph: never time it when there is a choice
        probe = bench_train(model, size, recipe.batch_size, steps=min(6, batches - warmup),
                            warmup=warmup, data=train_dir, recipe=options.recipe)[0]
        overhead = recipe.precise_bn_images / (3 * probe["images_per_s"]) + 2.0  # BN re-estimate, checkpoint
        # the budget covers the whole stage: the probe, and the trainer's own build and first trace (~ the probe's)
        seconds = max(0.1 * 60 * options.budget_minutes, 60 * options.budget_minutes - 2 * (time.perf_counter() - started))
        epochs = plan_epochs(seconds, probe["images_per_s"], len(train), overhead)
        config = load_config(model, options.recipe, {"image_size": size, "epochs": epochs,
                                                     "warmup_epochs": min(recipe.warmup_epochs, epochs / 4)})
        progress(f"{entry.name}: {probe['images_per_s']:.1f} training images/s -> {epochs:g} epochs in "
                 f"{options.budget_minutes:g} min")
    trainer = Trainer(config, train, run_dir, show_progress=options.show_progress,
                      records=sources_record(train_dir, val_dir))
    trainer.fit(resume=True)
    return {"run": run_dir, "epochs": config.epochs, "steps": trainer.total_steps, "batch_size": config.batch_size,
            "images_per_s": probe["images_per_s"] if probe else None}


def _keras_ap(run_dir: str, val_dir: str) -> dict:
    from mobile_spinenet.eval.evaluate import evaluate_path

    metrics, _ = evaluate_path(run_dir, val_dir)
    return {"AP": 100 * metrics["AP"], "AP50": 100 * metrics["AP50"]}


def export_verified(run_dir: str, path: str, quant: str, val_dir: str, verify_images: int, progress,
                    calib_dir: Optional[str] = None) -> dict:
    """Export and verify; a rejected file is recorded (and benchmarked) as rejected, not fatal.
    ``calib_dir``: the images a post-training int8 export calibrates on (default: the run's own
    training data, which a packed run such as a demo checkpoint does not record)."""
    import json

    from mobile_spinenet.quantization.export import ExportOptions
    from mobile_spinenet.quantization.export_run import CalibrationOptions, export_tflite, sidecar_paths
    from mobile_spinenet.quantization.verify import VerifyOptions
    from mobile_spinenet.quantization.verify import ExportVerificationError

    try:
        report = export_tflite(run_dir, path, ExportOptions(quant=quant), calibration=CalibrationOptions(data=calib_dir),
                               verification=VerifyOptions(val=val_dir, images=verify_images), progress=progress)
        file, message = path, None
    except ExportVerificationError as error:
        file, message = sidecar_paths(path)["rejected"], str(error)
        with open(sidecar_paths(path)["rejected_report"]) as f:
            report = json.load(f)
        progress(f"REJECTED: {message}")
    check = report["verification"]
    return {"file": file, "quant": report["quant"], "mb": os.path.getsize(file) / 1e6, "passed": check["passed"],
            "keras_AP": check["keras_ap"], "tflite_AP": check["tflite_ap"], "keras_AP50": check["keras_ap50"],
            "tflite_AP50": check["tflite_ap50"], "agreement": check["agreement"], "images": check["images"],
            "float_ops": report["ops"].get("float_ops", {}), "rejected_because": message}


def _counts(run) -> dict:
    from mobile_spinenet.summary import measure

    counts = measure(run.config.model, image_size=run.image_size, num_classes=run.num_classes,
                     spec=run.build_kwargs().get("spec"))
    return {"params": counts.params, "multiply_adds": counts.multiply_adds}


def compare_model(entry, options: CompareOptions, train_dir: str, val_dir: str, verify_images: int,
                  progress: Callable[[str], None] = print) -> ModelResult:
    """Run (or resume) every stage of one entry (:class:`~mobile_spinenet.eval.entries.Entry`) up to
    the benchmark (:func:`benchmark_all` times all of them together); returns its :class:`ModelResult`."""
    from mobile_spinenet.backend import keras
    from mobile_spinenet.quantization.export import ExportOptions
    from mobile_spinenet.quantization.export_run import export_tflite
    from mobile_spinenet.quantization.qat_run import QatOptions, qat
    from mobile_spinenet.quantization.verify import VerifyOptions
    from mobile_spinenet.training.runs import open_run

    out, model = options.out, entry.name
    result = ModelResult(os.path.join(out, "results", f"{model}.json"), model)
    if not result.has("model_id"):
        result.record("model_id", entry.model_id)
    float_dir, qat_dir = os.path.join(out, "runs", model), os.path.join(out, "runs", f"{model}-qat")
    if entry.run_dir:  # a finished float run in --runs-from
        float_dir = entry.run_dir
        if os.path.isfile(os.path.join(options.runs_from, f"{model}-qat", "run.json")):
            qat_dir = os.path.join(options.runs_from, f"{model}-qat")

    if not result.has("training"):
        if os.path.isfile(os.path.join(float_dir, "run.json")):
            run = open_run(float_dir)
            result.record("training", {"run": float_dir, "epochs": run.config.epochs, "reused": True,
                                       "batch_size": run.config.batch_size})
        else:
            progress(f"== {model}: float training, {options.budget_minutes:g} min budget -> {float_dir}")
            with result.stage("train"):
                training = _train_float(entry, options, train_dir, val_dir, float_dir, progress)
            result.record("training", training)
        keras.backend.clear_session()
    if not result.has("float"):
        progress(f"== {model}: Keras float AP on {val_dir}")
        with result.stage("float_eval"):
            result.record("float", _keras_ap(float_dir, val_dir))
    if not result.has("qat"):
        epochs = (options.qat_epochs if options.qat_epochs is not None
                  else max(0.25, round(options.qat_share * result["training"]["epochs"], 2)))
        if not os.path.isfile(os.path.join(qat_dir, "run.json")):
            progress(f"== {model}: quantization-aware training, {epochs:g} epochs -> {qat_dir}")
            with result.stage("qat"):
                qat(float_dir, train_dir, qat_dir, QatOptions(epochs=epochs, resume=True,
                                                               show_progress=options.show_progress))
        result.record("qat", {"run": qat_dir, "epochs": open_run(qat_dir).config.epochs})
        keras.backend.clear_session()
    exports = {"int8": (qat_dir, "int8", f"{model}_qat_int8.tflite"),
               "ptq": (float_dir, "int8", f"{model}_ptq_int8.tflite"),
               "fp32": (float_dir, "fp32", f"{model}_fp32.tflite")}
    for name in ("int8",) + tuple(options.extra_exports):
        if not result.has(name):
            source, quant, file = exports[name]
            progress(f"== {model}: export {name} TFLite, verified on {verify_images} val images")
            with result.stage(f"export_{name}"):
                result.record(name, export_verified(source, os.path.join(out, "exports", file), quant, val_dir,
                                                    verify_images, progress, calib_dir=train_dir))
            keras.backend.clear_session()
    if not result.has("int8_raw"):  # the same QAT model without the post-processing: the network's own latency
        path = os.path.join(out, "exports", f"{model}_qat_int8_raw.tflite")
        progress(f"== {model}: export int8 TFLite with raw outputs (--nms none), for the network's latency")
        with result.stage("export_raw"):
            export_tflite(qat_dir, path, ExportOptions(quant="int8", nms="none"),
                          verification=VerifyOptions(enabled=False), progress=progress)
        result.record("int8_raw", {"file": path, "mb": os.path.getsize(path) / 1e6})
        keras.backend.clear_session()
    if not result.has("counts"):
        run = open_run(float_dir)
        result.record("counts", {**_counts(run), "image_size": run.image_size,
                                 "num_classes": run.num_classes})
        keras.backend.clear_session()
    return result


def benchmark_all(results: list, options: CompareOptions, progress: Callable[[str], None] = print) -> None:
    """Time every int8 file not yet timed, all in one interleaved benchmark (``bench_rounds`` passes),
    so the latency ratios come from one stretch of time on the machine."""
    from mobile_spinenet.eval.benchmark import benchmark_interleaved

    pending = [result for result in results if not result.has("benchmark")]
    if not pending:
        return
    files = [result["int8"]["file"] for result in pending]
    raw_files = [result["int8_raw"]["file"] for result in pending if result.has("int8_raw")]
    progress(f"== benchmark: {len(files)} int8 file(s) with post-processing and {len(raw_files)} without, threads "
             f"{options.threads}, {options.bench_rounds} interleaved round(s) of {options.bench_runs} runs")
    started = time.perf_counter()
    measured = benchmark_interleaved(files + raw_files, options.threads, options.bench_runs, 5, options.bench_rounds)
    minutes = (time.perf_counter() - started) / 60 / len(pending)
    for result in pending:
        result.data["minutes"]["benchmark"] = round(minutes, 2)
        if result.has("int8_raw"):
            result.record("benchmark_raw", measured[result["int8_raw"]["file"]])
        result.record("benchmark", measured[result["int8"]["file"]])


def compare(options: CompareOptions, progress: Callable[[str], None] = print) -> str:
    """Compare ``options.models``; writes ``OUT/report.md`` (+ ``report.json`` and plots) and returns its path."""
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.compare_report import write_report

    options.validate()
    options.check_reused_sizes()
    train_dir, val_dir = split_folders(options.data, options.val)
    seeds = None
    if options.seed_spread:
        from mobile_spinenet.eval.significance import read_seeds
        seeds = read_seeds(options.seed_spread)  # before hours of work, so a bad file fails now
    verify_images = options.verify_images or len(read_dataset(val_dir))  # default: the whole val set
    started = time.perf_counter()
    results = [compare_model(entry, options, train_dir, val_dir, verify_images, progress) for entry in options.entries()]
    if options.external:
        from mobile_spinenet.eval.compare_external import compare_external
        results += [compare_external(entry, options.out, val_dir, verify_images, progress)
                    for entry in options.external_entries()]
    benchmark_all(results, options, progress)
    results = [result.data for result in results]
    spread, spread_notes = None, []
    if seeds is not None:  # a model's spread counts only for the float weights its seeds fine-tuned
        from mobile_spinenet.eval.significance import spread_for_weights
        from mobile_spinenet.training.runs import weights_digest
        spread, spread_notes = spread_for_weights(seeds, {r["model"]: weights_digest(r["training"]["run"])
                                                         for r in results if "training" in r})
    settings = {"data": os.path.abspath(train_dir), "val": os.path.abspath(val_dir),
                "budget_minutes": options.budget_minutes, "image_size": options.training_size, "recipe": options.recipe,
                "qat_share": options.qat_share, "threads": list(options.threads), "bench_runs": options.bench_runs,
                "bench_rounds": options.bench_rounds, "models": len(results),
                "reused_runs": {r["model"]: r["training"]["run"] for r in results
                                if r.get("training", {}).get("reused")},
                "external": {r["model"]: r["external"]["file"] for r in results if "external" in r},
                "minutes_this_call": round((time.perf_counter() - started) / 60, 1),
                **({"seed_spread": os.path.abspath(options.seed_spread), "seed_spread_notes": spread_notes}
                   if options.seed_spread else {})}
    return write_report(options.out, results, settings, spread)
