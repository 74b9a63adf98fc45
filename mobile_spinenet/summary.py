"""Model summaries: params and multiply-adds, alone or next to the paper's tables."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Optional

import numpy as np

from mobile_spinenet.counting import count_mask_rcnn, count_multiply_adds, count_params
from mobile_spinenet.paper import TOLERANCE, ReferenceRow
from mobile_spinenet.registry import INSTANCE_SEGMENTATION
from mobile_spinenet.zoo import build_model, get_model_info


@dataclass(frozen=True)
class Counts:
    model_id: str
    task: str
    image_size: int
    num_classes: int
    params: int
    multiply_adds: Optional[int]
    outputs: dict


@lru_cache(maxsize=None)
def measure(model_id: str, task: str = "detection", image_size: Optional[int] = None,
            num_classes: int = 80, multiply_adds: bool = True, spec=None) -> Counts:
    """Build a model and count its params (and multiply-adds from its frozen graph). Task
    ``instance-segmentation`` is Mask R-CNN, counted with 1000 proposals and 100 masks."""
    image_size = image_size or get_model_info(model_id).image_size
    if task == INSTANCE_SEGMENTATION:
        model = build_model(model_id, task, image_size, num_classes, spec=spec)
        counts = count_mask_rcnn(model) if multiply_adds else {"params": count_params(model), "multiply_adds": None}
        outputs = {name: tuple(t.shape) for name, t in model(np.zeros((1, image_size, image_size, 3), "float32")).items()}
        return Counts(model_id, task, image_size, num_classes, counts["params"], counts["multiply_adds"], outputs)
    model = build_model(model_id, task, image_size, num_classes, batch_size=1, spec=spec)
    outputs = {name: tuple(t.shape) for name, t in zip(model.output_names, model.outputs)}
    macs = count_multiply_adds(model) if multiply_adds else None
    return Counts(model_id, task, image_size, num_classes, count_params(model), macs, outputs)


def format_counts(counts: Counts) -> str:
    info = get_model_info(counts.model_id)
    lines = [f"model          {counts.model_id}  ({info.description})",
             f"task           {counts.task}, {counts.num_classes} classes, {counts.image_size}x{counts.image_size} input",
             f"params         {counts.params:,} ({counts.params / 1e6:.3f} M)"]
    if counts.multiply_adds is not None:
        lines.append(f"multiply-adds  {counts.multiply_adds:,} ({counts.multiply_adds / 1e9:.3f} B)")
    for name, shape in counts.outputs.items():
        lines.append(f"output         {name}: {list(shape)}")
    return "\n".join(lines)


def _ratio(ours: float, theirs: float) -> str:
    ratio = ours / theirs
    flag = "" if abs(ratio - 1.0) <= TOLERANCE else " *"
    return f"{ratio:.3f}{flag}"


def compare_rows(rows: Iterable[ReferenceRow], progress: Callable[[str], None] = lambda _: None) -> str:
    """A Markdown table of our counts next to reference rows; ratios off by > 10% get a ``*``."""
    header = ("| source | model | task | input | classes | params (M) ours / ref | ratio "
              "| multiply-adds (B) ours / ref | ratio |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        progress(f"counting {row.model_id} {row.task} {row.image_size}px {row.num_classes} classes")
        c = measure(row.model_id, row.task, row.image_size, row.num_classes)
        params_m, macs_b = c.params / 1e6, c.multiply_adds / 1e9
        lines.append(f"| {row.table} | {row.model_id} | {row.task} | {row.image_size} | {row.num_classes} "
                     f"| {params_m:.2f} / {row.params_m:.2f} | {_ratio(params_m, row.params_m)} "
                     f"| {macs_b:.3f} / {row.multiply_adds_b:.3f} | {_ratio(macs_b, row.multiply_adds_b)} |")
    return "\n".join(lines)
