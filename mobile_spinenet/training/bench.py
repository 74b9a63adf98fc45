"""``mobile-spinenet bench train``: images/s of a training step and the share of time the step
loop waits for the input pipeline (target: < 5%).

With several ``variants`` (e.g. ``plain,xla``) one trainer per variant is built on the same
data and their timed steps are interleaved in ``rounds`` (each round gives every variant an
equal block of steps), so the ratio between them comes from one run under the same load."""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Optional, Sequence

# Named speed-ups: TrainConfig overrides that must not change what a step computes
# (tests/test_training_speed.py checks each against the baseline).
VARIANTS = {"recipe": {}, "plain": {"jit_compile": False}, "xla": {"jit_compile": True}}


def check_variants(names: Sequence[str]) -> list:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(VARIANTS)}")
    return list(names)


def bench_train(model_id: str, image_size: Optional[int] = None, batch_size: int = 8, steps: int = 20,
                warmup: int = 3, data: Optional[str] = None, strategy: str = "default",
                variants: Sequence[str] = ("recipe",), rounds: int = 1, recipe: Optional[str] = None) -> list:
    """Time ``steps`` training steps of each variant (over ``recipe``, a config file or bundled
    recipe name) after ``warmup``; returns one result per variant."""
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.trainer import Trainer

    variants = check_variants(variants)
    rounds = max(1, min(rounds, steps))
    with tempfile.TemporaryDirectory(prefix="bench-train-") as temp:
        if data is None:
            data = f"{temp}/data"
            make_split(data, "train", batch_size * (steps + warmup + 1), seed=0)
        dataset = read_dataset(data)
        timings = {}
        for name in variants:
            config = load_config(model_id, recipe, overrides={"image_size": image_size, "batch_size": batch_size,
                                                      "strategy": strategy, "epochs": 1, **VARIANTS[name]})
            trainer = Trainer(config, dataset, f"{temp}/run-{name}", show_progress=False)
            if trainer.steps_per_epoch < steps + warmup:
                raise ValueError(f"{data} gives {trainer.steps_per_epoch} batches of {batch_size}; "
                                 f"need {steps + warmup} for --steps {steps}")
            batches = iter(trainer.epoch_batches(0))
            timings[name] = {"trainer": trainer, "batches": batches, "waits": [], "steps": []}
            for _ in range(warmup):  # tracing and compilation
                _timed_step(timings[name], record=False)
        for r in range(rounds):
            share = steps // rounds + (1 if r < steps % rounds else 0)
            for name in variants:
                for _ in range(share):
                    _timed_step(timings[name], record=True)
    results = []
    for name in variants:
        waits, step_times = timings[name]["waits"], timings[name]["steps"]
        total = sum(waits) + sum(step_times)
        results.append({"variant": name, "model": model_id, "image_size": timings[name]["trainer"].image_size,
                        "batch_size": batch_size, "steps": steps, "rounds": rounds,
                        "images_per_s": batch_size * steps / total,
                        "median_step_ms": 1000 * statistics.median(step_times),
                        "median_wait_ms": 1000 * statistics.median(waits), "input_wait_share": sum(waits) / total})
    return results


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
    first = results[0]
    lines = [f"model {first['model']} at {first['image_size']} px, batch {first['batch_size']}, "
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
