"""``mobile-spinenet bench train``: images/s of a training step and the share of time the
step loop waits for the input pipeline (target: < 5%)."""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Optional


def bench_train(model_id: str, image_size: Optional[int] = None, batch_size: int = 8, steps: int = 20,
                warmup: int = 3, data: Optional[str] = None, strategy: str = "default") -> dict:
    """Time ``steps`` training steps after ``warmup``; returns the figures it prints."""
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="bench-train-") as temp:
        if data is None:
            data = f"{temp}/data"
            make_split(data, "train", batch_size * (steps + warmup + 1), seed=0)
        dataset = read_dataset(data)
        config = load_config(model_id, overrides={"image_size": image_size, "batch_size": batch_size,
                                                  "strategy": strategy, "epochs": 1})
        trainer = Trainer(config, dataset, f"{temp}/run", show_progress=False)
        if trainer.steps_per_epoch < steps + warmup:
            raise ValueError(f"{data} gives {trainer.steps_per_epoch} batches of {batch_size}; "
                             f"need {steps + warmup} for --steps {steps}")
        batches = iter(trainer.epoch_batches(0))
        waits, step_times = [], []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            images, targets = next(batches)
            t1 = time.perf_counter()
            {k: float(v) for k, v in trainer.train_step(images, targets).items()}
            t2 = time.perf_counter()
            if i >= warmup:
                waits.append(t1 - t0)
                step_times.append(t2 - t1)
    total = sum(waits) + sum(step_times)
    return {"model": model_id, "image_size": trainer.image_size, "batch_size": batch_size, "steps": steps,
            "images_per_s": batch_size * steps / total, "median_step_ms": 1000 * statistics.median(step_times),
            "median_wait_ms": 1000 * statistics.median(waits), "input_wait_share": sum(waits) / total}


def format_bench(result: dict) -> str:
    share = result["input_wait_share"]
    verdict = "ok (< 5%)" if share < 0.05 else "INPUT-BOUND (>= 5%)"
    return (f"model {result['model']} at {result['image_size']} px, batch {result['batch_size']}, "
            f"{result['steps']} timed steps\n"
            f"  training throughput  {result['images_per_s']:.1f} images/s\n"
            f"  median step          {result['median_step_ms']:.1f} ms\n"
            f"  median input wait    {result['median_wait_ms']:.2f} ms\n"
            f"  input wait share     {100 * share:.2f}%  {verdict}")
