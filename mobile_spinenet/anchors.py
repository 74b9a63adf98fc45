"""Anchor boxes in pixels, ordered as the detectors flatten their outputs:
level by level, then row, column, and anchor at that location."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class AnchorGrid:
    """Anchors of one feature map: its size and the (height, width) of each anchor shape."""

    height: int
    width: int
    shapes: tuple[tuple[float, float], ...]


def grid_anchors(grids: Sequence[AnchorGrid], image_size: int) -> np.ndarray:
    """Boxes ``[N, 4]`` as (ymin, xmin, ymax, xmax) in pixels; centres at cell centres."""
    boxes = []
    for grid in grids:
        cy = (np.arange(grid.height) + 0.5) * image_size / grid.height
        cx = (np.arange(grid.width) + 0.5) * image_size / grid.width
        cy, cx = np.meshgrid(cy, cx, indexing="ij")
        hw = np.asarray(grid.shapes, dtype=np.float64)  # [A, 2]
        centres = np.stack([cy, cx], axis=-1)[:, :, None, :]  # [H, W, 1, 2]
        half = hw[None, None, :, :] / 2.0
        boxes.append(np.concatenate([centres - half, centres + half], axis=-1).reshape(-1, 4))
    return np.concatenate(boxes, axis=0).astype(np.float32)


@dataclass(frozen=True)
class RetinaNetAnchors:
    """RetinaNet anchors: ``anchor_scale * 2**level`` base size, ``num_scales`` octave scales,
    aspect ratios as width/height (Sec. 5.1: scale 4, 3 scales, {1/2, 1, 2}, P3..P7)."""

    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_scale: float = 4.0

    @property
    def num_anchors(self) -> int:
        return self.num_scales * len(self.aspect_ratios)

    def grids(self, image_size: int) -> list[AnchorGrid]:
        grids = []
        for level in range(self.min_level, self.max_level + 1):
            stride = 2 ** level
            shapes = []
            for octave in range(self.num_scales):
                size = self.anchor_scale * stride * 2 ** (octave / self.num_scales)
                for ratio in self.aspect_ratios:
                    shapes.append((size / np.sqrt(ratio), size * np.sqrt(ratio)))
            side = -(-image_size // stride)
            grids.append(AnchorGrid(side, side, tuple(shapes)))
        return grids

    def boxes(self, image_size: int) -> np.ndarray:
        return grid_anchors(self.grids(image_size), image_size)


@dataclass(frozen=True)
class SSDAnchors:
    """SSD anchors as in MobileNet-SSDLite: scales spread linearly from ``min_scale`` to
    ``max_scale`` of the image over the feature maps, ratios {1, 2, 1/2, 3, 1/3} plus an
    interpolated square; the first map keeps three (a square of half ``min_scale``, which is
    MobileNet-SSDLite's 0.1, and ``min_scale`` at ratios 2 and 1/2)."""

    feature_sizes: tuple[int, ...]
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)

    def anchors_per_location(self) -> list[int]:
        return [3] + [len(self.aspect_ratios) + 1] * (len(self.feature_sizes) - 1)

    def grids(self, image_size: int) -> list[AnchorGrid]:
        count = len(self.feature_sizes)
        scales = [self.min_scale + (self.max_scale - self.min_scale) * i / (count - 1)
                  for i in range(count)] + [1.0]
        grids = []
        for i, side in enumerate(self.feature_sizes):
            if i == 0:
                pairs = [(self.min_scale / 2, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
            else:
                pairs = [(scales[i], r) for r in self.aspect_ratios]
                pairs.append((np.sqrt(scales[i] * scales[i + 1]), 1.0))
            shapes = tuple((s * image_size / np.sqrt(r), s * image_size * np.sqrt(r)) for s, r in pairs)
            grids.append(AnchorGrid(side, side, shapes))
        return grids

    def boxes(self, image_size: int) -> np.ndarray:
        return grid_anchors(self.grids(image_size), image_size)
