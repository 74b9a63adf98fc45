"""RoIAlign over a feature pyramid (He et al., Mask R-CNN, Sec. 3; FPN's level rule, Lin et al., Eq. 1).

Each box is pooled from one level: ``floor(4 + log2(sqrt(area) / 224))`` clamped to the pyramid,
so a 224x224 box reads P4 (Model Garden's and Detectron2's canonical level). Inside its box, each of
the ``output_size x output_size`` bins averages ``sampling_ratio**2`` bilinear samples at regular
positions. Coordinates are "aligned" (Detectron2's ROIAlignV2): pixel ``(i, j)`` of a level with
stride ``s`` covers image pixels ``[j*s, (j+1)*s)``, so its centre is at ``(j + 0.5) * s``. A sample
more than one cell outside the map contributes zero; one within a cell is clamped to the border.

All levels are flattened into one ``[B, T, C]`` tensor and every box reads it with one gather per
bilinear corner, so the op is the same for any mix of levels (no per-level loop over boxes)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_spinenet.backend import tf

CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4


def assign_levels(boxes, min_level: int, max_level: int):
    """The pyramid level (int32 ``[...]``) each box ``[..., 4]`` (pixels) is pooled from."""
    height = tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    width = tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    size = tf.sqrt(tf.maximum(height * width, 1e-8))
    level = tf.floor(CANONICAL_LEVEL + tf.math.log(size / CANONICAL_SIZE) / np.log(2.0))
    return tf.cast(tf.clip_by_value(level, min_level, max_level), tf.int32)


@dataclass(frozen=True)
class RoIAlignConfig:
    output_size: int = 7
    sampling_ratio: int = 2  # bilinear samples per bin and axis


def _axis_samples(start, stop, stride, size, config: RoIAlignConfig):
    """Per box, the sample positions along one axis in the level's cell coordinates, with the two
    neighbouring cells and the weight of the upper one: ``(low, high, upper_weight, inside)``, each
    ``[B, R, output_size * sampling_ratio]``."""
    out, ratio = config.output_size, config.sampling_ratio
    offsets = tf.constant([(i + (s + 0.5) / ratio) / out for i in range(out) for s in range(ratio)], tf.float32)
    begin = start / stride - 0.5
    extent = (stop - start) / stride
    position = begin[..., None] + offsets * extent[..., None]
    size = tf.cast(size, tf.float32)[..., None]
    inside = (position >= -1.0) & (position <= size)
    position = tf.clip_by_value(position, 0.0, size - 1.0)
    low = tf.floor(position)
    high = tf.minimum(low + 1.0, size - 1.0)
    return tf.cast(low, tf.int32), tf.cast(high, tf.int32), position - low, tf.cast(inside, tf.float32)


def roi_align(features: dict, boxes, config: RoIAlignConfig = RoIAlignConfig()):
    """Pool ``boxes [B, R, 4]`` (ymin, xmin, ymax, xmax in input pixels) from ``features``
    ({level: [B, H, W, C]}, P_l with stride 2**l): ``[B, R, output_size, output_size, C]``."""
    levels = sorted(features)
    batch = tf.shape(boxes)[0]
    channels = int(features[levels[0]].shape[-1])
    heights = [tf.shape(features[level])[1] for level in levels]
    widths = [tf.shape(features[level])[2] for level in levels]
    flat = tf.concat([tf.reshape(features[level], [batch, -1, channels]) for level in levels], axis=1)
    sizes = tf.stack([h * w for h, w in zip(heights, widths)])
    level_offsets = tf.concat([[0], tf.cumsum(sizes)[:-1]], axis=0)

    level = assign_levels(boxes, levels[0], levels[-1]) - levels[0]  # [B, R]
    stride = tf.cast(tf.gather(tf.constant([2 ** lv for lv in levels], tf.float32), level), tf.float32)
    height = tf.gather(tf.stack(heights), level)
    width = tf.gather(tf.stack(widths), level)
    offset = tf.gather(level_offsets, level)
    y_low, y_high, y_weight, y_inside = _axis_samples(boxes[..., 0], boxes[..., 2], stride, height, config)
    x_low, x_high, x_weight, x_inside = _axis_samples(boxes[..., 1], boxes[..., 3], stride, width, config)

    def corner(rows, cols):  # [B, R, P] x [B, R, P] -> [B, R, P, P, C]
        index = offset[..., None, None] + rows[..., :, None] * width[..., None, None] + cols[..., None, :]
        samples = tf.gather(flat, tf.reshape(index, [batch, -1]), batch_dims=1)
        return tf.reshape(samples, tf.concat([tf.shape(index), [channels]], axis=0))

    wy, wx = y_weight[..., :, None, None], x_weight[..., None, :, None]
    values = ((1 - wy) * (1 - wx) * corner(y_low, x_low) + (1 - wy) * wx * corner(y_low, x_high)
              + wy * (1 - wx) * corner(y_high, x_low) + wy * wx * corner(y_high, x_high))
    values = values * (y_inside[..., :, None, None] * x_inside[..., None, :, None])
    out, ratio = config.output_size, config.sampling_ratio
    shape = tf.concat([tf.shape(boxes)[:2], [out, ratio, out, ratio, channels]], axis=0)
    return tf.reduce_mean(tf.reshape(values, shape), axis=[3, 5])
