"""Run logs: ``steps.csv`` (every step), ``metrics.csv`` (every epoch), TensorBoard scalars,
and ``curves.png`` (losses, learning rate and validation AP)."""
from __future__ import annotations

import csv
import io
import os
from typing import Optional

from mobile_spinenet.io_utils import write_atomically

# every task's loss parts (a task logs the ones it has; Mask R-CNN adds its RPN and mask losses)
LOSS_FIELDS = ("loss", "class_loss", "box_loss", "rpn_score_loss", "rpn_box_loss", "mask_loss", "l2_loss")
STEP_FIELDS = ("step", "epoch", *LOSS_FIELDS, "lr", "images_per_s")
EPOCH_FIELDS = ("epoch", "step", *LOSS_FIELDS, "lr", "images_per_s",
                "seconds", "val_AP", "val_AP50", "val_AP75", "val_mask_AP", "val_mask_AP50", "val_top1", "val_top5")
VAL_CURVES = ("val_AP", "val_AP50", "val_mask_AP", "val_mask_AP50", "val_top1", "val_top5")  # plotted when logged


def read_rows(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: str, fields, rows) -> None:
    """Rewrite a CSV atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, buffer.getvalue())


class RunLog:
    """The per-step and per-epoch CSVs of a run; ``truncate(step)`` drops rows a resumed run redoes."""

    def __init__(self, run_dir: str):
        self.steps_path = os.path.join(run_dir, "steps.csv")
        self.metrics_path = os.path.join(run_dir, "metrics.csv")
        self.run_dir = run_dir
        self.pending = []
        self.tensorboard = None

    def truncate(self, step: int) -> None:
        steps = [r for r in read_rows(self.steps_path) if int(r["step"]) <= step]
        epochs = [r for r in read_rows(self.metrics_path) if int(r["step"]) <= step]
        write_rows(self.steps_path, STEP_FIELDS, steps)
        write_rows(self.metrics_path, EPOCH_FIELDS, epochs)

    def step(self, row: dict) -> None:
        self.pending.append(row)

    def step_rows(self) -> list[dict]:
        """Every logged step, written and pending."""
        return read_rows(self.steps_path) + [{k: str(v) for k, v in r.items()} for r in self.pending]

    def epoch_means(self, epoch: int) -> dict:
        """Mean loss parts over every logged step of ``epoch`` (1-based), before and after a resume."""
        rows = [r for r in self.step_rows() if int(r["epoch"]) == epoch]
        keys = LOSS_FIELDS
        return {k: sum(float(r[k]) for r in rows) / len(rows) for k in keys if rows and _has(rows, k)}

    def last_epoch_row(self) -> dict:
        """The last metrics row as numbers (what a run resumed at its very end reports)."""
        rows = read_rows(self.metrics_path)
        row = {k: float(v) for k, v in rows[-1].items() if v not in (None, "")} if rows else {}
        return {k: int(v) if k in ("epoch", "step") else v for k, v in row.items()}

    def flush_steps(self) -> None:
        if self.pending:  # appended (a log); a resumed run first truncates it atomically
            new = not os.path.isfile(self.steps_path)
            with open(self.steps_path, "a", newline="") as f:
                writer = csv.DictWriter(f, STEP_FIELDS, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerows(self.pending)
            self._tensorboard(self.pending)
            self.pending = []

    def epoch(self, row: dict) -> None:
        self.flush_steps()
        write_rows(self.metrics_path, EPOCH_FIELDS, read_rows(self.metrics_path) + [row])
        self._tensorboard([{k: v for k, v in row.items() if k.startswith("val_")} | {"step": row["step"]}])

    def _tensorboard(self, rows) -> None:
        from mobile_spinenet.backend import tf
        if self.tensorboard is None:
            self.tensorboard = tf.summary.create_file_writer(os.path.join(self.run_dir, "tensorboard"))
        with self.tensorboard.as_default():
            for row in rows:
                for key, value in row.items():
                    if key not in ("step", "epoch") and value not in (None, ""):
                        tf.summary.scalar(key, float(value), step=int(row["step"]))
        self.tensorboard.flush()


def _has(rows, key) -> bool:
    return all(r.get(key) not in (None, "") for r in rows)


def _floats(rows, key):
    pairs = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_curves(run_dir: str, out_path: Optional[str] = None) -> str:
    """``curves.png``: loss parts (smoothed per step), learning rate, and val AP per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = read_rows(os.path.join(run_dir, "steps.csv"))
    epochs = read_rows(os.path.join(run_dir, "metrics.csv"))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in LOSS_FIELDS:
        x, y = _floats(steps, key)
        if y:
            k = max(1, len(y) // 50)
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            axes[0].plot(x[k - 1:], smooth, label=key)
    axes[0].set(title="training loss (moving average)", xlabel="step", yscale="log")
    axes[0].legend()
    axes[1].plot(*_floats(steps, "lr"))
    axes[1].set(title="learning rate", xlabel="step")
    for key in VAL_CURVES:
        x, y = _floats(epochs, key)
        if y:
            axes[2].plot(x, y, marker="o", label=key)
    classifier = any(r.get("val_top1") not in (None, "") for r in epochs)
    axes[2].set(title="validation accuracy" if classifier else "validation AP (pycocotools)", xlabel="step")
    if axes[2].lines:
        axes[2].legend()
    else:
        axes[2].text(0.5, 0.5, "no validation set (--val)", ha="center", transform=axes[2].transAxes)
    figure.tight_layout()
    out_path = out_path or os.path.join(run_dir, "curves.png")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    write_atomically(out_path, buffer.getvalue())
    return out_path
