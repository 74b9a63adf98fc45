"""``mobile-spinenet predict``: detections of a run directory or a ``.tflite`` file on image files,
drawn (boxes, labels, scores; a Mask R-CNN run's masks tinted in) and written as JSON, in
original-image pixels; a classifier's top classes with their probabilities, written as JSON."""
from __future__ import annotations

import io
import os
from typing import Callable, Optional, Sequence

import numpy as np

from mobile_spinenet.data.images import decode_rgb, fit_pixels
from mobile_spinenet.eval.instance_eval import encode_mask, paste_mask
from mobile_spinenet.io_utils import write_atomically, write_json_atomically
from mobile_spinenet.progress import counted

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def output_names(images: Sequence[str]) -> list:
    """A distinct drawn-file name per input: its base name, with ``-2``, ``-3`` ... where two
    inputs share one (``a/cat.jpg`` and ``b/cat.png`` give ``cat.jpg`` and ``cat-2.jpg``)."""
    names, taken = [], set()
    for path in images:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = f"{stem}.jpg", 1
        while name in taken:
            k += 1
            name = f"{stem}-{k}.jpg"
        taken.add(name)
        names.append(name)
    return names


DETECTIONS_FILE = "detections.json"


def check_inputs(images: Sequence[str], out_dir: str, outputs: Callable[[list], list], record: str,
                 force: bool = False) -> list:
    """Before any model loads: the image files ``images`` name (a folder: its images, sorted), each
    existing; ``out_dir`` can be a folder; and the files written there (``outputs(files)`` names
    them) replace neither an input nor a file that an earlier predict did not write (its
    ``record`` and the drawings the record names), unless ``force``."""
    from mobile_spinenet.data.images import IMAGE_EXTENSIONS, image_names
    from mobile_spinenet.ownership import drawings_owned, refuse_to_replace

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir} is an existing file, not a folder")
    files = []
    for path in images:
        if os.path.isdir(path):
            found = [os.path.join(path, name) for name in image_names(path)]
            if not found:
                raise ValueError(f"{path} is a folder without images ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"{path} does not exist")
    refuse_to_replace(outputs(files), drawings_owned(out_dir, record, "drawn"), "an earlier predict", force=force,
                      inputs=files)
    return files


def predict_images(model: str, images: Sequence[str], out_dir: str, score_threshold: float = 0.3,
                   labels: Optional[str] = None, resize: Optional[str] = None, force: bool = False) -> list:
    """Detect on each image, write ``out_dir/<name>.jpg`` with the boxes drawn and
    ``out_dir/detections.json``; returns the detections (one dict per image). Files an earlier
    predict did not write are replaced only with ``force``; the inputs never."""
    from PIL import Image, ImageDraw

    from mobile_spinenet.eval.detector_eval import to_original_pixels
    from mobile_spinenet.eval.evaluate import load_detector

    images = check_inputs(images, out_dir, lambda files: [os.path.join(out_dir, name) for name in output_names(files)]
                          + [os.path.join(out_dir, DETECTIONS_FILE)], DETECTIONS_FILE, force)
    detector = load_detector(model, labels, resize)
    names = detector.names
    results = []
    for path, drawn_name in counted(zip(images, output_names(images)), "detecting", total=len(images),
                                    enabled=len(images) > 1):
        pixels = decode_rgb(path)
        square, scale = fit_pixels(pixels, detector.image_size, detector.resize)
        masks = None
        if detector.instance_predict is not None:
            out = detector.instance_predict(square)
            boxes, scores, classes, counts, masks = (out[k] for k in ("boxes", "scores", "classes", "count", "masks"))
        else:
            boxes, scores, classes, counts = detector.predict(square)
        n = int(counts[0])
        keep = scores[0, :n] >= score_threshold
        original = to_original_pixels(boxes[0, :n][keep], scale, pixels.shape[1], pixels.shape[0])
        kept_masks = masks[0, :n][keep] if masks is not None else [None] * len(original)
        image_masks = [None if m is None else paste_mask(m, box, pixels.shape[0], pixels.shape[1])
                       for m, box in zip(kept_masks, original)]
        image = Image.fromarray(tint_masks(pixels, image_masks, classes[0, :n][keep]))
        detections = []
        draw = ImageDraw.Draw(image)
        for (ymin, xmin, ymax, xmax), score, cls, mask in zip(original, scores[0, :n][keep], classes[0, :n][keep],
                                                              image_masks):
            label = names[int(cls)] if names and int(cls) < len(names) else str(int(cls))
            colour = PALETTE[int(cls) % len(PALETTE)]
            draw.rectangle([xmin, ymin, xmax, ymax], outline=colour, width=2)
            draw.text((xmin + 2, max(0, ymin - 11)), f"{label} {score:.2f}", fill=colour)
            detection = {"label": label, "class": int(cls), "score": round(float(score), 4),
                         "box_xyxy": [round(float(v), 1) for v in (xmin, ymin, xmax, ymax)]}
            if mask is not None:
                detection["mask_rle"] = encode_mask(mask)
                detection["mask_pixels"] = int(mask.sum())
            detections.append(detection)
        encoded = io.BytesIO()
        image.save(encoded, format="JPEG", quality=92)
        write_atomically(os.path.join(out_dir, drawn_name), encoded.getvalue())
        results.append({"image": path, "drawn": os.path.join(out_dir, drawn_name), "detections": detections})
    write_json_atomically(os.path.join(out_dir, DETECTIONS_FILE), results)
    return results


CLASS_PREDICTIONS_FILE = "predictions.json"


def classify_images(model: str, images: Sequence[str], out_dir: str, labels: Optional[str] = None,
                    resize: Optional[str] = None, top: int = 5, force: bool = False) -> list:
    """The ``top`` classes of each image with their softmax probabilities, written to
    ``out_dir/predictions.json``; returns them (one dict per image)."""
    from mobile_spinenet.eval.classifier_eval import softmax
    from mobile_spinenet.eval.evaluate import load_classifier, read_labels

    images = check_inputs(images, out_dir, lambda files: [os.path.join(out_dir, CLASS_PREDICTIONS_FILE)],
                          CLASS_PREDICTIONS_FILE, force)
    classifier = load_classifier(model, resize)
    names = read_labels(labels) if labels else classifier.names
    results = []
    for path in counted(images, "classifying", enabled=len(images) > 1):
        square, _ = fit_pixels(decode_rgb(path), classifier.image_size, classifier.resize)
        scores = np.asarray(classifier.predict(square), np.float64)[0]
        if len(names) != len(scores):
            raise ValueError(f"{labels or model} names {len(names)} classes; the classifier scores {len(scores)}")
        probabilities = softmax(scores)
        best = np.argsort(-probabilities, kind="stable")[:top]
        results.append({"image": path, "top": [{"label": names[k], "class": int(k),
                                                "probability": round(float(probabilities[k]), 4)} for k in best]})
    write_json_atomically(os.path.join(out_dir, CLASS_PREDICTIONS_FILE), results)
    return results


def summarize_classes(result: dict, top: int = 3) -> str:
    """One console line per image: its ``top`` classes and their probabilities."""
    return f"{result['image']}: " + ", ".join(f"{c['label']} {c['probability']:.2f}" for c in result["top"][:top])


def tint_masks(pixels: np.ndarray, masks: Sequence, classes, opacity: float = 0.5) -> np.ndarray:
    """``pixels`` with each binary ``[H, W]`` mask (None: none) blended in its class's colour."""
    out = pixels.astype(np.float32)
    for mask, cls in zip(masks, classes):
        if mask is not None:
            colour = np.asarray(PALETTE[int(cls) % len(PALETTE)], np.float32)
            inside = mask.astype(bool)
            out[inside] = (1 - opacity) * out[inside] + opacity * colour
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def summarize(result: dict, top: int = 3) -> str:
    """One console line per image: the count per label and the ``top`` best detections."""
    from collections import Counter

    found = result["detections"]
    if not found:
        return f"{result['image']}: nothing above the threshold -> {result['drawn']}"
    counts = ", ".join(f"{n} {label}" for label, n in Counter(d["label"] for d in found).most_common())
    best = ", ".join(f"{d['label']} {d['score']:.2f}" for d in sorted(found, key=lambda d: -d["score"])[:top])
    return f"{result['image']}: {len(found)} detections ({counts}); best: {best} -> {result['drawn']}"
