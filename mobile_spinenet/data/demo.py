"""The bundled demo dataset: Fashion-MNIST photos of clothing pasted onto canvases.

Each canvas (about 240-320 px a side) gets a smooth two-colour background with noise and
1-6 tinted glyphs of three size bands (small < 32 px, medium, large > 96 px, as COCO splits
them); glyphs may overlap a little (IoU < 0.3). The result is written as COCO
(``annotations.json`` + ``images/*.jpg``). Each object's ``segmentation`` is its glyph's
silhouette (the pixels its box is the tight box of), minus what later glyphs cover, as a
compressed RLE; ``area`` stays the box's area, as before masks were written, so detection AP by
size is unchanged. Train and val canvases draw from disjoint glyphs.
Everything follows from ``seed``: the same seed gives the same files.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from mobile_spinenet.box_coder import pairwise_iou
from mobile_spinenet.data.glyphs import CLASS_NAMES, load_glyphs
from mobile_spinenet.io_utils import write_atomically, write_json_atomically

CANVAS_SIZES = ((320, 240), (256, 256), (240, 320), (288, 288), (320, 256))  # (width, height)
SIZE_BANDS = ((14, 30), (34, 90), (100, 190))  # side in px: small, medium, large
SIZE_BAND_WEIGHTS = (0.3, 0.45, 0.25)
CATEGORY_IDS = tuple(range(1, len(CLASS_NAMES) + 1))


def _background(rng, width, height) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    canvas = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    return canvas + rng.normal(0, 8, canvas.shape)


def _iou(a, b) -> float:
    """IoU of two (ymin, xmin, ymax, xmax) boxes, in float64 (placement must not depend on rounding)."""
    return float(pairwise_iou(np.asarray([a], np.float64), np.asarray([b], np.float64))[0, 0])


def _paste(rng, canvas, glyph, side, placed):
    """Paste ``glyph`` resized to ``side``; returns its tight box (y0, x0, y1, x1) and its
    silhouette on the canvas (bool ``[H, W]``), or None."""
    from PIL import Image

    height, width = canvas.shape[:2]
    side = min(side, height - 2, width - 2)
    alpha = np.asarray(Image.fromarray(glyph).resize((side, side), Image.BILINEAR), np.float32) / 255.0
    rows, cols = np.flatnonzero(alpha.max(1) > 0.15), np.flatnonzero(alpha.max(0) > 0.15)
    if len(rows) == 0:
        return None
    for _ in range(20):
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        box = (top + rows[0], left + cols[0], top + rows[-1] + 1, left + cols[-1] + 1)
        if all(_iou(box, other) < 0.3 for other in placed):
            break
    else:
        return None
    colour = rng.uniform(0, 255, 3)
    mask = np.clip(alpha * 1.6, 0, 1)[..., None]
    shade = (0.35 + 0.65 * alpha)[..., None] * colour
    region = canvas[top:top + side, left:left + side]
    canvas[top:top + side, left:left + side] = region * (1 - mask) + shade * mask
    silhouette = np.zeros((height, width), bool)
    silhouette[top:top + side, left:left + side] = alpha > 0.15  # the box's threshold: box = its tight box
    return box, silhouette


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def make_split(out_dir: str, split: str, num_images: int, seed: int, first_image_id: int = 1) -> str:
    """Write ``num_images`` canvases of glyph ``split`` to ``out_dir`` as COCO; returns the JSON path."""
    from PIL import Image

    glyphs, labels = load_glyphs(split)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    images, annotations = [], []
    for k in range(num_images):
        width, height = CANVAS_SIZES[int(rng.integers(len(CANVAS_SIZES)))]
        canvas = _background(rng, width, height)
        placed, silhouettes, objects = [], [], []
        for _ in range(int(rng.integers(1, 7))):
            band = SIZE_BANDS[rng.choice(len(SIZE_BANDS), p=SIZE_BAND_WEIGHTS)]
            g = int(rng.integers(len(glyphs)))
            pasted = _paste(rng, canvas, glyphs[g], int(rng.integers(band[0], band[1] + 1)), placed)
            if pasted is None:
                continue
            box, silhouette = pasted
            for earlier in silhouettes:
                earlier &= ~silhouette  # the new glyph covers what lies under it
            placed.append(box)
            silhouettes.append(silhouette)
            y0, x0, y1, x1 = (int(v) for v in box)
            objects.append({"id": len(annotations) + len(objects) + 1, "image_id": first_image_id + k,
                            "category_id": CATEGORY_IDS[int(labels[g])], "iscrowd": 0,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        for entry, silhouette in zip(objects, silhouettes):
            annotations.append({**entry, "segmentation": _rle(silhouette)})
        file_name = f"{split}_{k:05d}.jpg"
        image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
        image.save(os.path.join(out_dir, "images", file_name), quality=92)
        images.append({"id": first_image_id + k, "file_name": file_name, "width": width, "height": height})
    coco = {"info": {"description": f"mobile-spinenet demo data ({split}, seed {seed}): Fashion-MNIST "
                                    "glyphs (c) 2017 Zalando SE, MIT license"},
            "images": images, "annotations": annotations,
            "categories": [{"id": c, "name": n, "supercategory": "clothing"}
                           for c, n in zip(CATEGORY_IDS, CLASS_NAMES)]}
    path = os.path.join(out_dir, "annotations.json")
    write_json_atomically(path, coco, indent=None)
    return path


LICENSE_FILE = "LICENSE-fashion-mnist.txt"  # written beside train/ and val/: marks a demo dataset


def make_demo_dataset(out_dir: str, seed: int = 0, train_images: int = 800, val_images: int = 200,
                      progress: Optional[callable] = None) -> dict:
    """Write ``out_dir/train`` and ``out_dir/val`` (COCO format); returns their folders."""
    folders = {}
    for split, count in (("train", train_images), ("val", val_images)):
        folder = os.path.join(out_dir, split)
        make_split(folder, split, count, seed)
        folders[split] = folder
        if progress:
            progress(f"wrote {count} {split} images to {folder}")
    write_atomically(os.path.join(out_dir, LICENSE_FILE),
                     open(os.path.join(os.path.dirname(__file__), "FASHION_MNIST_LICENSE.txt")).read())
    return folders
