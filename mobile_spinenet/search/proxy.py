"""The proxy task of ``mobile-spinenet search``: a short training of an architecture on a subset of
the user's data, whose val AP is the search's accuracy signal (the paper's proxy: a shorter
training at a smaller size on part of COCO). It is a real run directory, trained by the kit's one
trainer with the search's recipe, so a killed trial resumes from its last checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class ProxyOptions:
    images: int = 1000  # training images: a seeded sample of the training set
    epochs: float = 4.0  # passes over them
    image_size: int = 256
    val_images: int = 100  # val images scored (the first of the val set)
    recipe: str = "cpu_fast"
    anchor_scale: Optional[float] = 3.0  # the demo recipe's SpineNet anchors (checkpoints/demo)
    seed: int = 0

    def validate(self) -> "ProxyOptions":
        from mobile_spinenet.training.config import recipe_path
        import os

        if not isinstance(self.images, int) or self.images < 1:
            raise ValueError(f"--proxy-images must be a positive whole number, got {self.images!r}")
        if not self.epochs > 0 or not np.isfinite(self.epochs):
            raise ValueError(f"--proxy-epochs must be a positive number, got {self.epochs!r}")
        if not isinstance(self.val_images, int) or self.val_images < 1:
            raise ValueError(f"--proxy-val-images must be a positive whole number, got {self.val_images!r}")
        if not isinstance(self.image_size, int) or self.image_size <= 0 or self.image_size % 128:
            raise ValueError(f"--proxy-size {self.image_size!r} must be a positive multiple of 128 (SpineNet detectors)")
        if not os.path.isfile(recipe_path(self.recipe)):
            raise ValueError(f"--proxy-recipe {self.recipe}: no such bundled recipe or file")
        return self


def subset(dataset, count: int, seed: int):
    """``count`` records of ``dataset`` drawn with ``seed`` (all of them when it has fewer), in their order."""
    if count >= len(dataset):
        return dataset
    chosen = np.sort(np.random.default_rng(seed).choice(len(dataset), count, replace=False))
    return dataclasses.replace(dataset, records=[dataset.records[i] for i in chosen])


def proxy_config(architecture, options: ProxyOptions, train_images: int):
    """The proxy run's :class:`~mobile_spinenet.training.config.TrainConfig`."""
    from mobile_spinenet.training.config import load_config

    recipe = load_config(architecture.base, options.recipe)
    warmup = min(recipe.warmup_epochs, options.epochs / 4)
    batch = min(recipe.batch_size, train_images)
    return load_config(architecture.base, options.recipe, {
        "architecture": architecture.to_dict(), "image_size": options.image_size, "epochs": options.epochs,
        "warmup_epochs": warmup, "val_max_images": options.val_images, "anchor_scale": options.anchor_scale,
        "seed": options.seed, "batch_size": batch, "checkpoint_every_steps": 50})


def proxy_ap(architecture, train, val, run_dir: str, options: ProxyOptions, show_progress: bool = False) -> dict:
    """Train ``architecture`` on the proxy task into ``run_dir`` (resuming what is there); returns
    its val ``AP`` and ``AP50`` in points, and the training's images/s."""
    import time

    from mobile_spinenet.backend import keras
    from mobile_spinenet.training.trainer import Trainer

    train = subset(train, options.images, options.seed)
    config = proxy_config(architecture, options, len(train))
    started = time.perf_counter()
    trainer = Trainer(config, train, run_dir, val, show_progress=show_progress)
    row = trainer.fit(resume=True)
    seconds = time.perf_counter() - started
    keras.backend.clear_session()
    return {"AP": 100 * float(row.get("val_AP", 0.0)), "AP50": 100 * float(row.get("val_AP50", 0.0)),
            "train_images": len(train), "proxy_seconds": seconds}
