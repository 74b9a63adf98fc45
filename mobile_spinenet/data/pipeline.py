"""The ``tf.data`` input pipeline: parallel decode, long side resized to the input size and
zero-padded to a square (Sec. 5.1), random horizontal flip, scale jitter with a random crop,
optionally a 2x2 mosaic of four examples, anchor labelling, batching and prefetch.

Randomness is stateless and keyed by (seed, epoch, position in the epoch), and each epoch's
order is a seeded permutation, so an epoch can be restarted at any step and give the very
batches an uninterrupted run would have seen (exact resume).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mobile_spinenet.backend import tf
from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD, check_resize, decode_rgb
from mobile_spinenet.data.labeler import label_anchors
from mobile_spinenet.data.masks import crop_to_box, decode_segmentation, recrop_masks
from mobile_spinenet.data.records import DetectionDataset

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class InputConfig:
    """How images become training examples."""

    image_size: int
    batch_size: int
    jitter: tuple = (1.0, 1.0)  # scale range; the paper trains with (0.4, 1.6)
    flip: bool = True
    seed: int = 0
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    resize: str = "letterbox"  # or "stretch" (see resize_and_pad)
    mosaic: float = 0.0  # share of detection examples made a 2x2 mosaic of four images (see _mosaic)


def _decode(path):
    """The kit's one decoder (:func:`mobile_spinenet.data.images.decode_rgb`: EXIF orientation,
    16-bit scaling), so training sees the pixels that predict and benchmark see."""
    image = tf.numpy_function(decode_rgb, [path], tf.uint8, stateful=False)
    return tf.ensure_shape(image, [None, None, 3])


def normalize(image):
    """uint8 RGB -> float in [-1, 1], the models' input range."""
    return tf.cast(image, tf.float32) / PIXEL_STD - PIXEL_MEAN / PIXEL_STD


def resize_and_pad(image, boxes, image_size: int, scale_factor=1.0, crop_fraction=(0.0, 0.0),
                   resize: str = "letterbox"):
    """Fit an image to the ``image_size`` square, then (for jitter) scale by ``scale_factor``.

    ``letterbox`` (the kit's default, the paper's): the long side becomes ``image_size *
    scale_factor``, the aspect ratio is kept. ``stretch`` (what MediaPipe Tasks and the Task
    Library do): both sides become it. A result larger than the square is cropped at
    ``crop_fraction`` of the slack; a smaller one is padded bottom/right with zeros (after
    normalising). Returns the image, boxes in the new pixels, and ``(scale_y, offset_y, offset_x,
    scale_x)`` to undo it (``scale_y == scale_x`` when letterboxed)."""
    check_resize(resize)
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    target = tf.cast(image_size, tf.float32) * scale_factor
    if resize == "stretch":
        scale_y, scale_x = target / height, target / width
    else:
        scale_y = scale_x = target / tf.maximum(height, width)
    new_h = tf.maximum(tf.cast(tf.round(height * scale_y), tf.int32), 1)
    new_w = tf.maximum(tf.cast(tf.round(width * scale_x), tf.int32), 1)
    resized = tf.image.resize(normalize(image), [new_h, new_w], method="bilinear")
    off_y = tf.cast(tf.cast(tf.maximum(new_h - image_size, 0), tf.float32) * crop_fraction[0], tf.int32)
    off_x = tf.cast(tf.cast(tf.maximum(new_w - image_size, 0), tf.float32) * crop_fraction[1], tf.int32)
    cropped = resized[off_y:off_y + image_size, off_x:off_x + image_size]
    padded = tf.image.pad_to_bounding_box(cropped, 0, 0, image_size, image_size)
    offset = tf.cast(tf.stack([off_y, off_x, off_y, off_x]), tf.float32)
    limit = tf.cast(tf.stack([tf.minimum(new_h - off_y, image_size), tf.minimum(new_w - off_x, image_size)]),
                    tf.float32)
    boxes = boxes * tf.stack([scale_y, scale_x, scale_y, scale_x]) - offset
    boxes = tf.clip_by_value(boxes, 0.0, tf.tile(limit, [2]))
    return padded, boxes, tf.stack([scale_y, tf.cast(off_y, tf.float32), tf.cast(off_x, tf.float32), scale_x])


def _augment(image, boxes, classes, key, config: InputConfig, masks=None):
    """Flip, scale-jitter and crop one example. ``masks [M, S, S]`` (each object's mask cropped to
    its box, :func:`~mobile_spinenet.data.masks.crop_to_box`) follow their boxes: flipped with the
    image, and re-cropped to the part of the box the crop keeps. Returns ``(image, boxes, classes)``
    or, with masks, ``(image, boxes, classes, masks)``."""
    seeds = tf.random.experimental.stateless_split(key, 3)
    if config.flip:
        flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
        width = tf.cast(tf.shape(image)[1], tf.float32)
        image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
        flipped = tf.stack([boxes[:, 0], width - boxes[:, 3], boxes[:, 2], width - boxes[:, 1]], axis=1)
        boxes = tf.where(flip, flipped, boxes)
        if masks is not None:
            masks = tf.cond(flip, lambda: tf.reverse(masks, axis=[2]), lambda: masks)
    lo, hi = config.jitter
    scale_factor = tf.random.stateless_uniform([], seeds[1], lo, hi) if hi > lo else tf.constant(float(lo))
    crop = tf.random.stateless_uniform([2], seeds[2])
    unclipped = boxes
    image, boxes, undo = resize_and_pad(image, boxes, config.image_size, scale_factor, (crop[0], crop[1]),
                                        config.resize)
    keep = tf.logical_and(boxes[:, 2] - boxes[:, 0] >= 1.0, boxes[:, 3] - boxes[:, 1] >= 1.0)
    if masks is None:
        return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)
    scale = tf.stack([undo[0], undo[3], undo[0], undo[3]])
    unclipped = unclipped * scale - tf.stack([undo[1], undo[2], undo[1], undo[2]])
    masks = recrop_masks(masks, unclipped, boxes)
    return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep), tf.boolean_mask(masks, keep)


def _ragged(records):
    boxes = tf.RaggedTensor.from_row_lengths(
        np.concatenate([r.boxes for r in records] + [np.zeros((0, 4), np.float32)]),
        [len(r.boxes) for r in records])
    classes = tf.RaggedTensor.from_row_lengths(
        np.concatenate([r.classes for r in records] + [np.zeros((0,), np.int32)]),
        [len(r.classes) for r in records])
    return boxes, classes


def epoch_order(num_records: int, seed: int, epoch: int) -> np.ndarray:
    """The record order of ``epoch``: a permutation that depends on (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(num_records)


def steps_per_epoch(dataset, batch_size: int) -> int:
    """Full batches per epoch of a detection or class-folder dataset (the remainder is dropped)."""
    steps = len(dataset) // batch_size
    if steps == 0:
        raise ValueError(f"{len(dataset)} training images are fewer than one batch of {batch_size}")
    return steps


def _epoch_span(num_examples: int, batch_size: int, start_step: int) -> tuple:
    """``(first, end)``: the positions of an epoch's full batches from ``start_step`` on (at least one batch)."""
    return start_step * batch_size, max(1, num_examples // batch_size) * batch_size


def _epoch_slice(num_examples: int, config: InputConfig, epoch: int, start_step: int) -> tuple:
    """``(order, keys)``: the indices the epoch's batches take from ``start_step`` on, and each
    example's random key (seed, epoch, position), the same whenever the epoch is (re)started."""
    first, end = _epoch_span(num_examples, config.batch_size, start_step)
    order = epoch_order(num_examples, config.seed, epoch)[first:end]
    positions = np.arange(first, end, dtype=np.int64)
    keys = np.stack([np.full_like(positions, config.seed), epoch * 1_000_000 + positions], axis=1)
    return order, keys


def _batched(data: tf.data.Dataset, load, batch_size: int, deterministic: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = deterministic
    # A file that passed the reader's check but fails to decode later is dropped with a warning.
    return (data.map(load, num_parallel_calls=AUTOTUNE).with_options(options)
            .ignore_errors(log_warning=True).batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE))


def train_dataset(dataset: DetectionDataset, anchors: np.ndarray, config: InputConfig, epoch: int,
                  start_step: int = 0, deterministic: bool = True) -> tf.data.Dataset:
    """Batches ``(images [B, S, S, 3], {"classes": [B, N], "boxes": [B, N, 4]})`` of ``epoch``,
    starting at ``start_step`` (for resume)."""
    steps_per_epoch(dataset, config.batch_size)  # at least one batch
    order, keys = _epoch_slice(len(dataset), config, epoch, start_step)
    anchors = tf.constant(anchors, tf.float32)

    def labelled(image, boxes, classes):
        target_classes, target_boxes = label_anchors(anchors, boxes, classes,
                                                     config.positive_iou, config.negative_iou)
        return image, {"classes": target_classes, "boxes": target_boxes}

    if config.mosaic > 0:
        return _mosaic_train_dataset(dataset, config, epoch, start_step, order, keys, labelled, deterministic)
    records = [dataset.records[i] for i in order]
    boxes, classes = _ragged(records)

    def load(path, boxes, classes, key):
        return labelled(*_augment(_decode(path), boxes, classes, key, config))

    data = tf.data.Dataset.from_tensor_slices(([r.path for r in records], boxes, classes, keys))
    return _batched(data, load, config.batch_size, deterministic)


def mosaic_partners(num_records: int, config: InputConfig, epoch: int, start_step: int = 0) -> np.ndarray:
    """``[positions, 3]`` record indices: the three images that join each position of ``epoch``
    (from ``start_step`` on) when it is drawn as a mosaic; seeded by (seed, epoch) only, like
    the order, so a restarted epoch draws the same mosaics."""
    first, end = _epoch_span(num_records, config.batch_size, start_step)
    return np.random.default_rng([config.seed, epoch, 4]).integers(0, num_records, (end, 3))[first:]


def _mosaic_train_dataset(dataset, config: InputConfig, epoch: int, start_step: int, order, keys, labelled,
                          deterministic: bool) -> tf.data.Dataset:
    """The detection batches with ``config.mosaic`` of the examples drawn as :func:`_mosaic`; the
    others are augmented as without mosaics (but their random draws differ)."""
    paths = tf.constant([r.path for r in dataset.records])
    all_boxes, all_classes = _ragged(dataset.records)
    partners = mosaic_partners(len(dataset), config, epoch, start_step)

    def one(index, key, tile_config):
        return _augment(_decode(tf.gather(paths, index)), all_boxes[index], all_classes[index], key, tile_config)

    def load(index, others, key):
        use_mosaic = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(key, 4)) < config.mosaic
        image, boxes, classes = tf.cond(use_mosaic, lambda: _mosaic(tf.concat([[index], others], 0), key, config, one),
                                        lambda: one(index, key, config))
        return labelled(image, boxes, classes)

    data = tf.data.Dataset.from_tensor_slices((order.astype(np.int64), partners.astype(np.int64), keys))
    return _batched(data, load, config.batch_size, deterministic)


def _mosaic(indices, key, config: InputConfig, one):
    """Four examples, each augmented (flip, jitter, crop) to a half-size tile, tiled 2x2 into one
    ``image_size`` square (YOLOv4's mosaic with the centre fixed): more objects per image, at half
    their scale, and more small ones. ``one(index, key, tile_config)`` gives a tile's ``(image,
    boxes, classes)``."""
    half = config.image_size // 2
    tile_config = dataclasses.replace(config, image_size=half)
    tiles = [one(indices[k], tf.random.experimental.stateless_fold_in(key, 10 + k), tile_config) for k in range(4)]
    image = tf.concat([tf.concat([tiles[0][0], tiles[1][0]], 1), tf.concat([tiles[2][0], tiles[3][0]], 1)], 0)
    offsets = ((0, 0), (0, half), (half, 0), (half, half))  # (y, x) of each tile
    boxes = tf.concat([tile[1] + tf.constant([dy, dx, dy, dx], tf.float32)
                       for tile, (dy, dx) in zip(tiles, offsets)], 0)
    classes = tf.concat([tile[2] for tile in tiles], 0)
    return tf.ensure_shape(image, [config.image_size, config.image_size, 3]), boxes, classes


def max_instances(dataset: DetectionDataset, cap: int = 100) -> int:
    """Ground-truth slots per image for instance segmentation: the most boxes an image has (<= cap)."""
    return max(1, min(cap, max(len(r.boxes) for r in dataset.records)))


def instance_train_dataset(dataset: DetectionDataset, config: InputConfig, epoch: int, start_step: int = 0,
                           mask_size: int = 112, instances: Optional[int] = None,
                           deterministic: bool = True) -> tf.data.Dataset:
    """Batches ``(images, {"gt_boxes" [B, G, 4], "gt_classes" [B, G] (-1: padding), "gt_masks"
    [B, G, mask_size, mask_size]})`` of ``epoch`` for Mask R-CNN, from ``start_step`` on: the
    detection augmentation, with each object's mask cropped to its box and following it. The
    dataset must be read with masks (``read_dataset(..., masks=True)``)."""
    if any(r.segmentations is None for r in dataset.records):
        raise ValueError("instance segmentation needs a dataset read with its masks (read_dataset(masks=True))")
    steps_per_epoch(dataset, config.batch_size)
    instances = instances or max_instances(dataset)
    order, keys = _epoch_slice(len(dataset), config, epoch, start_step)
    records = [dataset.records[i] for i in order]
    boxes, classes = _ragged(records)

    def box_crops(index):
        record = dataset.records[int(index)]
        crops = [crop_to_box(decode_segmentation(m, record.height, record.width), box, mask_size)
                 for m, box in zip(record.segmentations, record.boxes)]
        return np.asarray(crops, np.float32).reshape(-1, mask_size, mask_size)

    def load(path, index, boxes, classes, key):
        masks = tf.numpy_function(box_crops, [index], tf.float32, stateful=False)
        masks = tf.ensure_shape(masks, [None, mask_size, mask_size])
        image, boxes, classes, masks = _augment(_decode(path), boxes, classes, key, config, masks)
        count = tf.minimum(tf.shape(boxes)[0], instances)
        pad = instances - count
        return image, {"gt_boxes": tf.pad(boxes[:count], [[0, pad], [0, 0]]),
                       "gt_classes": tf.pad(classes[:count], [[0, pad]], constant_values=-1),
                       "gt_masks": tf.pad(masks[:count], [[0, pad], [0, 0], [0, 0]])}

    data = tf.data.Dataset.from_tensor_slices(([r.path for r in records], order.astype(np.int64), boxes, classes,
                                               keys))
    return _batched(data, load, config.batch_size, deterministic)


def classification_train_dataset(dataset, config: InputConfig, epoch: int, start_step: int = 0,
                                 deterministic: bool = True) -> tf.data.Dataset:
    """Batches ``(images [B, S, S, 3], labels [B])`` of ``epoch`` of a
    :class:`~mobile_spinenet.data.class_folders.ClassFolderDataset`, from ``start_step`` on: the
    detection augmentation (flip, scale jitter with a random crop) without boxes."""
    steps_per_epoch(dataset, config.batch_size)  # at least one batch
    order, keys = _epoch_slice(len(dataset), config, epoch, start_step)
    no_boxes = tf.zeros([0, 4], tf.float32)

    def load(path, label, key):
        image, _, _ = _augment(_decode(path), no_boxes, tf.zeros([0], tf.int32), key, config)
        return image, label

    data = tf.data.Dataset.from_tensor_slices(([dataset.paths[i] for i in order],
                                               np.asarray([dataset.labels[i] for i in order], np.int32), keys))
    return _batched(data, load, config.batch_size, deterministic)


def statistics_sample(num_examples: int, count: int, seed: int) -> np.ndarray:
    """``count`` example indices in a seeded random order, for statistics over batches (precise BN):
    a dataset stored in order (class folders sorted by class, frames of one video) would make
    each batch one class or one scene, and averaging such batches' variances misses the variance
    between them."""
    return np.random.default_rng([seed, 7_777_777]).permutation(num_examples)[:count]


def spread_indices(size: int, count: Optional[int] = None) -> np.ndarray:
    """``count`` (default: all) of the indices ``0 .. size - 1``, spread evenly over them."""
    count = size if count is None else min(count, size)
    return np.unique(np.round(np.linspace(0, size - 1, count)).astype(int)) if count else np.zeros([0], int)


def classification_eval_dataset(dataset, image_size: int, batch_size: int = 32, resize: str = "letterbox",
                                max_images: Optional[int] = None, indices=None,
                                skip_unreadable: bool = False) -> tf.data.Dataset:
    """Batches ``(images, labels)`` of a class-folder dataset, without augmentation; ``max_images``
    takes that many spread evenly over the set (its files are sorted by class); ``indices``
    chooses the images (and their order) instead."""
    chosen = indices if indices is not None else spread_indices(len(dataset), max_images)

    def load(path, label):
        image, _, _ = resize_and_pad(_decode(path), tf.zeros([0, 4]), image_size, resize=resize)
        return image, label

    data = tf.data.Dataset.from_tensor_slices(([dataset.paths[i] for i in chosen],
                                               np.asarray([dataset.labels[i] for i in chosen], np.int32)))
    return _loaded(data, load, skip_unreadable).batch(batch_size).prefetch(AUTOTUNE)


def eval_dataset(dataset: DetectionDataset, image_size: int, batch_size: int = 8,
                 records: Optional[list] = None, resize: str = "letterbox",
                 skip_unreadable: bool = False) -> tf.data.Dataset:
    """Batches ``(images, image_ids, scales)`` without augmentation; ``scales [B, 2]`` (y, x) map
    model pixels back to the original image (``original = model / scale``). An image that fails
    to decode stops the iteration naming it (scoring without it would change the AP), unless
    ``skip_unreadable`` (statistics over training images: dropped with a warning, as in training)."""
    records = records if records is not None else dataset.records

    def load(path, image_id):
        image, _, undo = resize_and_pad(_decode(path), tf.zeros([0, 4]), image_size, resize=resize)
        return image, image_id, tf.stack([undo[0], undo[3]])

    data = tf.data.Dataset.from_tensor_slices(([r.path for r in records],
                                               np.asarray([r.image_id for r in records], np.int64)))
    return _loaded(data, load, skip_unreadable).batch(batch_size).prefetch(AUTOTUNE)


def _loaded(data: tf.data.Dataset, load, skip_unreadable: bool) -> tf.data.Dataset:
    loaded = data.map(load, num_parallel_calls=AUTOTUNE)
    return loaded.ignore_errors(log_warning=True) if skip_unreadable else loaded
