"""Run a Mask R-CNN over a dataset and score its boxes and masks with pycocotools (bbox and segm
AP). Its images go through the preprocessing every detector of the kit is evaluated with
(``eval_dataset``), its boxes are mapped back to the original pixels the same way
(``to_original_pixels``), and each 28x28 mask is pasted into its box in the original image."""
from __future__ import annotations

from typing import Optional

import numpy as np

from mobile_spinenet.data.masks import bilinear_sample
from mobile_spinenet.data.records import DetectionDataset
from mobile_spinenet.eval.coco_metrics import evaluate
from mobile_spinenet.eval.detector_eval import image_detections

MASK_THRESHOLD = 0.5


def paste_mask(mask: np.ndarray, box, height: int, width: int) -> np.ndarray:
    """A ``[S, S]`` mask of probabilities over ``box`` (ymin, xmin, ymax, xmax, pixels of the
    image) as a binary ``[height, width]`` uint8 image mask: bilinear at each pixel centre inside
    the box, then ``>= 0.5``."""
    size = mask.shape[0]
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    out = np.zeros((height, width), np.uint8)
    top, left = max(int(np.floor(ymin)), 0), max(int(np.floor(xmin)), 0)
    bottom, right = min(int(np.ceil(ymax)), height), min(int(np.ceil(xmax)), width)
    if bottom <= top or right <= left:
        return out
    # pixel centre p maps to mask cell coordinate (p - box start) / box size * S - 0.5
    rows = (np.arange(top, bottom) + 0.5 - ymin) / max(ymax - ymin, 1e-6) * size - 0.5
    cols = (np.arange(left, right) + 0.5 - xmin) / max(xmax - xmin, 1e-6) * size - 0.5
    inside_rows = (rows >= -0.5) & (rows <= size - 0.5)
    inside_cols = (cols >= -0.5) & (cols <= size - 0.5)
    values = bilinear_sample(mask, rows, cols) * inside_rows[:, None] * inside_cols[None, :]
    out[top:bottom, left:right] = values >= MASK_THRESHOLD
    return out


def encode_mask(mask: np.ndarray) -> dict:
    """A binary ``[H, W]`` mask as COCO's compressed RLE (JSON-ready)."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_rcnn_predictor(model):
    """Images ``[B, S, S, 3]`` -> the model's detections as NumPy (boxes in model pixels)."""
    from mobile_spinenet.backend import tf

    @tf.function(reduce_retracing=True)
    def forward(images):  # float32 also from a model trained in 16 bits
        return {k: tf.cast(v, tf.float32) if v.dtype in (tf.bfloat16, tf.float16) else v
                for k, v in model(images, training=False).items()}

    return lambda images: {k: v.numpy() for k, v in forward(images).items()}


def boxes_only(instance_predict):
    """A Mask R-CNN predictor as the kit's box predictors are: images -> ``(boxes, scores,
    classes, count)`` (what box-only consumers such as ``eval`` without masks take)."""
    def predict(images):
        out = instance_predict(images)
        return out["boxes"], out["scores"], out["classes"], out["count"]

    return predict


def predict_instances(predict, dataset: DetectionDataset, image_size: int, batch_size: int = 4,
                      max_images: Optional[int] = None, progress=None, resize: str = "letterbox") -> list[dict]:
    """COCO results with ``bbox`` and an RLE ``segmentation`` each, in original-image pixels."""
    results = []
    for record, entries, out in image_detections(predict, dataset, image_size, batch_size, max_images, progress,
                                                 resize):
        for entry, box, mask in zip(entries, out["boxes"], out["masks"]):
            entry["segmentation"] = encode_mask(paste_mask(mask, box, record.height, record.width))
        results += entries
    return results


def evaluate_instances(predict, dataset: DetectionDataset, image_size: int, batch_size: int = 4,
                       max_images: Optional[int] = None, progress=None, resize: str = "letterbox") -> tuple:
    """``({"bbox": metrics, "segm": metrics}, results)`` over (the first ``max_images`` of) ``dataset``,
    whose annotation file must hold the ground-truth segmentations."""
    results = predict_instances(predict, dataset, image_size, batch_size, max_images, progress, resize)
    records = dataset.records[:max_images] if max_images else dataset.records
    ids = [r.image_id for r in records]
    ground_truth = dataset.coco_ground_truth()
    missing = [a.get("id") for a in ground_truth["annotations"] if "segmentation" not in a]
    if missing:
        raise ValueError(f"{dataset.annotation_file}: annotation(s) {missing[:5]} have no segmentation; "
                         f"mask AP needs one per object")
    return ({"bbox": evaluate(ground_truth, results, ids),
             "segm": evaluate(without_empty_masks(ground_truth), results, ids, "segm")}, results)


def without_empty_masks(ground_truth: dict) -> dict:
    """COCO ground truth whose objects with a mask of no pixel (e.g. a demo glyph hidden entirely
    by glyphs pasted over it) are marked ``iscrowd``, so mask AP ignores them as COCO ignores crowd
    regions: no mask can match them. Box AP keeps them, as it does for every detector."""
    from pycocotools import mask as coco_mask

    sizes = {image["id"]: (image["height"], image["width"]) for image in ground_truth["images"]}
    annotations = []
    for annotation in ground_truth["annotations"]:
        height, width = sizes[annotation["image_id"]]
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width)) if segmentation else None
        elif isinstance(segmentation.get("counts"), list):
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()
                   if isinstance(segmentation["counts"], str) else segmentation["counts"]}
        if rle is None or float(coco_mask.area(rle)) == 0.0:
            annotation = {**annotation, "iscrowd": 1, "segmentation": encode_mask(np.zeros((height, width), np.uint8))}
        annotations.append(annotation)
    return {**ground_truth, "annotations": annotations}
