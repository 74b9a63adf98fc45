"""``mobile-spinenet bench train``: images/s of a training step and the share of time the step
loop waits for the input pipeline (target: < 5%); with ``epochs``, images/s of the whole
training loop (:func:`bench_loop`: steps and everything between them) and each phase's share.

With several ``variants`` (e.g. ``plain,xla``) one trainer per variant is built on the same
data and their timed steps are interleaved in ``rounds`` (each round gives every variant an
equal block of steps), so the ratio between them comes from one run under the same load.
A variant that TensorFlow reads from the environment at import (``no-onednn``) needs its own
process: then every variant runs one fresh process per round, in turn, so the ratio still comes
from one interleaved run."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence

# Named speed-ups: TrainConfig overrides that must not change what a step computes
# (tests/test_training_speed.py and tests/test_optimizers.py check each against the baseline).
VARIANTS = {"recipe": {}, "plain": {"jit_compile": False}, "xla": {"jit_compile": True},
            "unfused": {"fused_updates": False},
            # the step to bfloat16 rounding (tests/test_training_speed.py), not bit for bit
            "bfloat16": {"precision": "mixed_bfloat16"}}
# Variants set in the environment before TensorFlow is imported, each run in its own process with
# one of the VARIANTS' configs. no-onednn: TensorFlow's own kernels, its default on CPUs without
# AVX-512 VNNI/BF16/AMX (the kit turns oneDNN on, mobile_spinenet/backend.py); before: those
# kernels and Keras's per-variable optimizer and weight-average ops, the step before the speed work.
PROCESS_VARIANTS = {"no-onednn": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "recipe"),
                    "before": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "unfused")}


def check_variants(names: Sequence[str]) -> list:
    known = {**VARIANTS, **PROCESS_VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return list(names)


def bench_train(model_id: str, image_size: Optional[int] = None, batch_size: int = 8, steps: int = 20,
                warmup: int = 3, data: Optional[str] = None, strategy: str = "default",
                variants: Sequence[str] = ("recipe",), rounds: int = 1, recipe: Optional[str] = None,
                progress: Optional[Callable[[str], None]] = None) -> list:
    """Time ``steps`` training steps of each variant (over ``recipe``, a config file or bundled
    recipe name) after ``warmup``; returns one result per variant."""
    from mobile_spinenet.data.demo import make_split

    variants = check_variants(variants)
    rounds = max(1, min(rounds, steps))
    setup = {"model_id": model_id, "image_size": image_size, "batch_size": batch_size, "warmup": warmup,
             "strategy": strategy, "recipe": recipe}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as temp:
        if data is None:
            data = f"{temp}/data"
            make_split(data, "train", batch_size * (steps + warmup + 1), seed=0)
        if any(name in PROCESS_VARIANTS for name in variants):
            timings = _timings_in_processes(setup, data, variants, steps, rounds, progress or (lambda message: None))
        else:
            timings = _timings(setup, data, variants, steps, rounds, temp)
    results = []
    for name in variants:
        waits, step_times = timings[name]["waits"], timings[name]["steps"]
        total = sum(waits) + sum(step_times)
        results.append({"variant": name, "model": model_id, "image_size": timings[name]["image_size"],
                        "batch_size": batch_size, "steps": steps, "rounds": rounds,
                        "images_per_s": batch_size * steps / total,
                        "median_step_ms": 1000 * statistics.median(step_times),
                        "median_wait_ms": 1000 * statistics.median(waits), "input_wait_share": sum(waits) / total,
                        "onednn": timings[name]["onednn"], "fused_updates": timings[name]["fused_updates"]})
    return results


def bench_loop(model_id: str, data: str, epochs: float, image_size: Optional[int] = None, batch_size: int = 8,
               val: Optional[str] = None, validate_every: Optional[int] = None, recipe: Optional[str] = None,
               variant: str = "recipe", show_progress: bool = False) -> dict:
    """Train ``epochs`` on ``data`` through the real loop (validation on ``val`` at the run's
    cadence, checkpoints, plots) in a temporary run and return its :class:`LoopClock` summary
    with the setup and the CPU it ran on."""
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.host import cpu_description
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.runs import sources_record
    from mobile_spinenet.training.trainer import Trainer

    if variant not in VARIANTS:
        raise ValueError(f"--epochs times the whole loop of one in-process variant ({', '.join(VARIANTS)}), "
                         f"not {variant!r}")
    config = load_config(model_id, recipe, overrides={"image_size": image_size, "batch_size": batch_size,
                                                      "epochs": epochs, "validate_every": validate_every,
                                                      **VARIANTS[variant]})
    train_data = read_dataset(data)
    val_data = read_dataset(val) if val else None
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as temp:
        trainer = Trainer(config, train_data, f"{temp}/run", val_data=val_data, show_progress=show_progress,
                          records=sources_record(data, val))
        trainer.fit()
    return {"model": model_id, "image_size": trainer.image_size, "batch_size": batch_size, "epochs": epochs,
            "train_images": len(train_data), "val_images": len(val_data) if val_data is not None else 0,
            "validate_every": trainer.validate_every, "variant": variant, "cpu": cpu_description(),
            "onednn": onednn_enabled(), **trainer.loop_time}


def format_loop(result: dict) -> str:
    from mobile_spinenet.training.loop_time import format_loop_time

    return (f"{result['cpu']}\nmodel {result['model']} at {result['image_size']} px, batch {result['batch_size']}, "
            f"{result['epochs']:g} epochs of {result['train_images']} images, validating "
            f"{result['val_images']} images every {result['validate_every']} epoch(s) and after the last\n  "
            + format_loop_time(result))


def _round_shares(steps: int, rounds: int) -> list:
    return [steps // rounds + (1 if r < steps % rounds else 0) for r in range(rounds)]


def _timings(setup: dict, data: str, variants: Sequence[str], steps: int, rounds: int, temp: str) -> dict:
    """``{variant: {"waits", "steps", "image_size", "onednn", "fused_updates"}}`` of in-process
    variants, interleaved in rounds."""
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.trainer import Trainer

    dataset = read_dataset(data)
    batch_size, warmup = setup["batch_size"], setup["warmup"]
    timings = {}
    for name in variants:
        config = load_config(setup["model_id"], setup["recipe"], overrides={
            "image_size": setup["image_size"], "batch_size": batch_size, "strategy": setup["strategy"], "epochs": 1,
            **VARIANTS[name]})
        trainer = Trainer(config, dataset, f"{temp}/run-{name}", show_progress=False)
        if trainer.steps_per_epoch < steps + warmup:
            raise ValueError(f"{data} gives {trainer.steps_per_epoch} batches of {batch_size}; "
                             f"need {steps + warmup} for --steps {steps}")
        batches = iter(trainer.epoch_batches(0))
        timings[name] = {"trainer": trainer, "batches": batches, "waits": [], "steps": [],
                         "image_size": trainer.image_size, "onednn": onednn_enabled(),
                         "fused_updates": config.fused_updates}
    # Warm up (trace, compile) only once every trainer is built: building one seeds TensorFlow, which
    # clears its kernel cache, and the next step of every trainer built before would pay ~5 s again.
    for name in variants:
        for _ in range(warmup):
            _timed_step(timings[name], record=False)
    for share in _round_shares(steps, rounds):
        for name in variants:
            for _ in range(share):
                _timed_step(timings[name], record=True)
    return timings


def _timings_in_processes(setup: dict, data: str, variants: Sequence[str], steps: int, rounds: int,
                          progress: Callable[[str], None]) -> dict:
    """The same, with one fresh process per variant and round (each warms up on its own)."""
    timings = {name: {"waits": [], "steps": []} for name in variants}
    for number, share in enumerate(_round_shares(steps, rounds), 1):
        for name in variants:
            progress(f"round {number}/{rounds}: {name}, {share} steps in a new process")
            environment, config_variant = PROCESS_VARIANTS.get(name, ({}, name))
            job = {**setup, "data": data, "variant": config_variant, "steps": share}
            env = {**os.environ, **environment}
            done = subprocess.run([sys.executable, "-m", "mobile_spinenet.training.bench", json.dumps(job)],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise ValueError(f"the {name} process failed: {last}")  # e.g. the data's own error
            timed = json.loads(done.stdout.strip().splitlines()[-1])
            for key in ("waits", "steps"):
                timings[name][key] += timed[key]
            timings[name].update({key: timed[key] for key in ("image_size", "onednn", "fused_updates")})
    return timings


def _worker(job: dict) -> dict:
    """One process's share of :func:`_timings_in_processes`: ``job["steps"]`` timed steps."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as temp:
        timing = _timings(job, job["data"], [job["variant"]], job["steps"], 1, temp)[job["variant"]]
    return {key: timing[key] for key in ("waits", "steps", "image_size", "onednn", "fused_updates")}


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs oneDNN's kernels (decided when it was imported)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def _timed_step(timing: dict, record: bool) -> None:
    t0 = time.perf_counter()
    images, targets = next(timing["batches"])
    t1 = time.perf_counter()
    {k: float(v) for k, v in timing["trainer"].train_step(images, targets).items()}
    t2 = time.perf_counter()
    if record:
        timing["waits"].append(t1 - t0)
        timing["steps"].append(t2 - t1)


def format_bench(results: list) -> str:
    from mobile_spinenet.host import cpu_description

    first = results[0]
    lines = [cpu_description(), f"model {first['model']} at {first['image_size']} px, batch {first['batch_size']}, "
             f"{first['steps']} timed steps per variant"
             + (f", interleaved in {first['rounds']} rounds" if len(results) > 1 else "")]
    lines.append(f"  {'variant':10s} {'images/s':>9s} {'vs first':>9s} {'median step':>12s} "
                 f"{'median wait':>12s} {'input wait':>11s}")
    for result in results:
        share = result["input_wait_share"]
        verdict = "ok" if share < 0.05 else "INPUT-BOUND"
        ratio = result["images_per_s"] / first["images_per_s"]
        lines.append(f"  {result['variant']:10s} {result['images_per_s']:9.1f} {ratio:8.2f}x "
                     f"{result['median_step_ms']:9.1f} ms {result['median_wait_ms']:9.2f} ms "
                     f"{100 * share:6.2f}% {verdict}")
    lines.append("  (input wait: share of the loop spent waiting for a batch; ok below 5%)")
    return "\n".join(lines)


if __name__ == "__main__":  # a process of _timings_in_processes
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
