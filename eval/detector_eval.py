"""Run a detector over a dataset and score it with pycocotools. A *predictor* maps a batch of
preprocessed images ``[B, S, S, 3]`` to ``(boxes [B, D, 4] in model pixels, scores, classes,
count)``; Keras models and TFLite files both become predictors, so they are evaluated through
the same preprocessing, box mapping and results JSON."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from mobile_spinenet.data.records import DetectionDataset
from mobile_spinenet.eval.coco_metrics import boxes_to_coco, evaluate
from mobile_spinenet.postprocess import NMSConfig, detect

Predictor = Callable[[np.ndarray], tuple]


def keras_predictor(model, anchors: np.ndarray, nms: NMSConfig = NMSConfig()) -> Predictor:
    """A predictor from a Keras detector (its raw outputs + :func:`detect`)."""
    from mobile_spinenet.backend import tf

    @tf.function(reduce_retracing=True)
    def forward(images):
        outputs = model(images, training=False)  # float32 also from a model trained in 16 bits
        return tf.cast(outputs["classes"], tf.float32), tf.cast(outputs["boxes"], tf.float32)

    def predict(images):
        logits, codes = forward(images)
        return detect(logits, codes, anchors, nms)

    return predict


def tflite_predictor(interpreter, anchors: np.ndarray, image_size: int, nms: NMSConfig = NMSConfig()) -> Predictor:
    """A predictor from a TFLite interpreter of an exported detector: files with the in-graph
    post-processing (outputs ``location``/``category``/``score``/``number of detections``, boxes
    normalised) or raw ``classes``/``boxes`` outputs, decoded here with :func:`detect`."""
    from mobile_spinenet.quantization.interpreter import run

    def predict(images):
        per_image = []
        for image in images:  # exported files take one image at a time
            outputs = run(interpreter, image[None])
            if "location" in outputs:
                per_image.append((outputs["location"][0] * image_size, outputs["score"][0],
                                  outputs["category"][0].astype(np.int32), int(outputs["number of detections"][0])))
            else:
                boxes, scores, classes, count = detect(outputs["classes"], outputs["boxes"], anchors, nms)
                per_image.append((boxes[0], scores[0], classes[0], int(count[0])))
        return tuple(np.stack([p[i] for p in per_image]) for i in range(4))

    return predict


def to_original_pixels(boxes: np.ndarray, scale, width: int, height: int) -> np.ndarray:
    """Undo the letterbox (one ``scale``) or the stretch (``(scale_y, scale_x)``): model-pixel
    (ymin, xmin, ymax, xmax) boxes to original-image pixels, clipped to the image (the
    preprocessing pads bottom/right, so there is no offset)."""
    scale_y, scale_x = (scale, scale) if np.ndim(scale) == 0 else (float(scale[0]), float(scale[1]))
    return np.clip(boxes / np.array([scale_y, scale_x, scale_y, scale_x], np.float32), 0, [height, width, height, width])


def image_detections(predict, dataset: DetectionDataset, image_size: int, batch_size: int = 8,
                     max_images: Optional[int] = None, progress=None, resize: str = "letterbox"):
    """Run ``predict`` over (the first ``max_images`` of) ``dataset`` and yield, per image,
    ``(record, entries, outputs)``: its COCO-format detections (boxes in original-image pixels)
    and the predictor's own outputs for it, cut to its detections. ``predict`` returns
    ``(boxes, scores, classes, count)`` or a dict with those keys and any others (e.g. masks)."""
    from mobile_spinenet.data.pipeline import eval_dataset

    records = dataset.records[:max_images] if max_images else dataset.records
    by_id = {r.image_id: r for r in records}
    class_to_category = dict(enumerate(dataset.label_map.category_ids))
    for images, image_ids, scales in eval_dataset(dataset, image_size, batch_size, records, resize):
        out = predict(images.numpy())
        if not isinstance(out, dict):
            out = dict(zip(("boxes", "scores", "classes", "count"), out))
        for b, image_id in enumerate(image_ids.numpy()):
            n, record = int(out["count"][b]), by_id[int(image_id)]
            mine = {k: v[b, :n] for k, v in out.items() if k != "count"}
            mine["boxes"] = to_original_pixels(mine["boxes"], scales[b].numpy(), record.width, record.height)
            yield record, boxes_to_coco(record.image_id, mine["boxes"], mine["scores"], mine["classes"],
                                        class_to_category), mine
        if progress:
            progress(len(image_ids))


def predict_dataset(predict: Predictor, dataset: DetectionDataset, image_size: int, batch_size: int = 8,
                    max_images: Optional[int] = None, progress=None, resize: str = "letterbox") -> list[dict]:
    """COCO-format detections of ``predict`` on ``dataset`` (boxes in original-image pixels)."""
    return [entry for _, entries, _ in image_detections(predict, dataset, image_size, batch_size, max_images, progress,
                                                        resize) for entry in entries]


def evaluate_predictor(predict: Predictor, dataset: DetectionDataset, image_size: int, batch_size: int = 8,
                       max_images: Optional[int] = None, progress=None, resize: str = "letterbox") -> tuple[dict, list]:
    """``(metrics, detections)``: pycocotools box metrics over (the first ``max_images`` of) ``dataset``,
    preprocessed the way the detector's consumer will (``resize``: letterbox or stretch)."""
    detections = predict_dataset(predict, dataset, image_size, batch_size, max_images, progress, resize)
    records = dataset.records[:max_images] if max_images else dataset.records
    metrics = evaluate(dataset.coco_ground_truth(), detections, image_ids=[r.image_id for r in records])
    return metrics, detections
