"""``mobile-spinenet predict``: detections of a run directory or a ``.tflite`` file on image files,
drawn (boxes, labels, scores) and written as JSON, in original-image pixels."""
from __future__ import annotations

import io
import os
from typing import Sequence

from mobile_spinenet.eval.benchmark import letterbox
from mobile_spinenet.io_utils import write_atomically, write_json_atomically

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def predict_images(model: str, images: Sequence[str], out_dir: str, score_threshold: float = 0.3) -> list:
    """Detect on each image, write ``out_dir/<name>.jpg`` with the boxes drawn and
    ``out_dir/detections.json``; returns the detections (one dict per image)."""
    from PIL import Image, ImageDraw

    from mobile_spinenet.eval.detector_eval import to_original_pixels
    from mobile_spinenet.eval.evaluate import load_detector

    detector = load_detector(model)
    names = detector.label_map.names if detector.label_map else None
    results = []
    for path in images:
        if not os.path.isfile(path):
            raise ValueError(f"{path} does not exist")
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise ValueError(f"{path} is not a readable image ({error})") from None
        scale = detector.image_size / max(image.size)
        boxes, scores, classes, counts = detector.predict(letterbox(path, detector.image_size))
        n = int(counts[0])
        keep = scores[0, :n] >= score_threshold
        original = to_original_pixels(boxes[0, :n][keep], scale, image.width, image.height)
        detections = []
        draw = ImageDraw.Draw(image)
        for (ymin, xmin, ymax, xmax), score, cls in zip(original, scores[0, :n][keep], classes[0, :n][keep]):
            label = names[int(cls)] if names and int(cls) < len(names) else str(int(cls))
            colour = PALETTE[int(cls) % len(PALETTE)]
            draw.rectangle([xmin, ymin, xmax, ymax], outline=colour, width=2)
            draw.text((xmin + 2, max(0, ymin - 11)), f"{label} {score:.2f}", fill=colour)
            detections.append({"label": label, "class": int(cls), "score": round(float(score), 4),
                               "box_xyxy": [round(float(v), 1) for v in (xmin, ymin, xmax, ymax)]})
        encoded = io.BytesIO()
        image.save(encoded, format="JPEG", quality=92)
        name = os.path.splitext(os.path.basename(path))[0] + ".jpg"
        write_atomically(os.path.join(out_dir, name), encoded.getvalue())
        results.append({"image": path, "drawn": os.path.join(out_dir, name), "detections": detections})
    write_json_atomically(os.path.join(out_dir, "detections.json"), results)
    return results
