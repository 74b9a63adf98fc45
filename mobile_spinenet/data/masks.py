"""Instance masks: COCO segmentations (polygons or RLE) decoded to binary masks, and a mask cropped
to its box at a fixed size, the form Mask R-CNN's targets are taken from (Model Garden's parser
does the same: ground-truth masks travel as ``M x M`` crops of their boxes, not as full images).

A segmentation that cannot be a mask raises :class:`MaskError` with the reason; the readers report
it like a bad box and skip the object."""
from __future__ import annotations

import numpy as np


class MaskError(ValueError):
    """A segmentation that does not describe a mask of its image."""


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """``[height, width]`` uint8 mask of a COCO ``segmentation``: a list of polygons
    ``[x1, y1, x2, y2, ...]`` (pixels), or an RLE ``{"size": [h, w], "counts": ...}`` with counts
    as a list (uncompressed) or a string (compressed)."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            raise MaskError(f"RLE without a [height, width] size: {str(segmentation)[:60]}")
        if [int(size[0]), int(size[1])] != [height, width]:
            raise MaskError(f"RLE size {list(size)} is not the image's {[height, width]}")
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            if sum(int(c) for c in counts) != height * width:
                raise MaskError(f"RLE counts add up to {sum(counts)} pixels, the image has {height * width}")
            rle = coco_mask.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
        else:
            raise MaskError("RLE counts must be a list or a string")
        try:
            mask = coco_mask.decode(rle)
        except Exception as error:  # pycocotools raises bare exceptions on corrupt strings
            raise MaskError(f"RLE cannot be decoded ({error})") from None
        if mask.shape != (height, width):
            raise MaskError(f"RLE decodes to {list(mask.shape)}, the image is {[height, width]}")
        if not mask.any():
            raise MaskError("the RLE mask covers no pixel (an object hidden entirely by others?)")
        return mask.astype(np.uint8)
    if not isinstance(segmentation, list) or not segmentation:
        raise MaskError("empty segmentation (no polygon)")
    polygons = []
    for polygon in segmentation:
        if not isinstance(polygon, (list, tuple)) or len(polygon) < 6 or len(polygon) % 2:
            raise MaskError(f"a polygon needs at least 3 (x, y) points, got {str(polygon)[:60]}")
        points = np.asarray(polygon, np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(points)):
            raise MaskError("a polygon has a non-finite coordinate")
        polygons.append(points.reshape(-1).tolist())
    mask = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, height, width)))
    if not mask.any():
        raise MaskError("the polygon covers no pixel of the image (outside it, or of zero area)")
    return mask.astype(np.uint8)


def bilinear_sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``image [H, W]`` at every (row, col) pair of the given pixel-centre coordinates (index
    units, clamped to the image): ``[len(rows), len(cols)]``."""
    height, width = image.shape
    rows = np.clip(rows, 0.0, height - 1.0)
    cols = np.clip(cols, 0.0, width - 1.0)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, height - 1), np.minimum(c0 + 1, width - 1)
    wr, wc = (rows - r0)[:, None], (cols - c0)[None, :]
    image = image.astype(np.float32)
    return ((1 - wr) * (1 - wc) * image[np.ix_(r0, c0)] + (1 - wr) * wc * image[np.ix_(r0, c1)]
            + wr * (1 - wc) * image[np.ix_(r1, c0)] + wr * wc * image[np.ix_(r1, c1)])


def crop_to_box(mask: np.ndarray, box, size: int) -> np.ndarray:
    """``mask [H, W]`` inside ``box`` (ymin, xmin, ymax, xmax, pixels) as ``[size, size]`` float32 in
    [0, 1]: bilinear at the centres of a ``size x size`` grid over the box (pixel ``(i, j)`` of the
    image covers ``[j, j + 1)``)."""
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    cells = (np.arange(size) + 0.5) / size
    rows = ymin + cells * (ymax - ymin) - 0.5
    cols = xmin + cells * (xmax - xmin) - 0.5
    return bilinear_sample(mask, rows, cols)


def recrop_masks(masks, old_boxes, new_boxes):
    """``masks [M, S, S]`` cropped to ``old_boxes [M, 4]`` -> the same masks cropped to
    ``new_boxes`` (e.g. the part of each box an image crop keeps), at the same size ``S``, bilinear
    at cell centres; outside the old box they are 0. TF tensors."""
    from mobile_spinenet.backend import tf

    size = int(masks.shape[-1])
    resized = tf.image.crop_and_resize(masks[..., None], cell_centre_crops(relative_window(new_boxes, old_boxes),
                                                                           size, size),
                                       tf.range(tf.shape(masks)[0]), [size, size], extrapolation_value=0.0)
    return resized[..., 0]


def relative_window(boxes, frames):
    """``boxes [..., 4]`` in the [0, 1] frame of ``frames [..., 4]`` (both corner boxes in pixels)."""
    from mobile_spinenet.backend import tf

    height = tf.maximum(frames[..., 2] - frames[..., 0], 1e-6)
    width = tf.maximum(frames[..., 3] - frames[..., 1], 1e-6)
    return tf.stack([(boxes[..., 0] - frames[..., 0]) / height, (boxes[..., 1] - frames[..., 1]) / width,
                     (boxes[..., 2] - frames[..., 0]) / height, (boxes[..., 3] - frames[..., 1]) / width], axis=-1)


def cell_centre_crops(window, out_size: int, in_size: int):
    """``tf.image.crop_and_resize`` boxes that sample the ``out_size`` cell centres of ``window``
    (``[..., 4]`` in the [0, 1] frame of an ``in_size`` grid whose cell ``i`` is centred at
    ``(i + 0.5) / in_size``): crop_and_resize itself puts its first and last samples on the box
    edges and maps 0 and 1 to the first and last cells' centres."""
    from mobile_spinenet.backend import tf

    y1, x1, y2, x2 = (window[..., i] for i in range(4))
    dy, dx = (y2 - y1) * 0.5 / out_size, (x2 - x1) * 0.5 / out_size
    to_cells = lambda v: (v * in_size - 0.5) / (in_size - 1)  # noqa: E731
    return tf.stack([to_cells(y1 + dy), to_cells(x1 + dx), to_cells(y2 - dy), to_cells(x2 - dx)], axis=-1)
