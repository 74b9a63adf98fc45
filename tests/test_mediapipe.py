"""A kit export through MediaPipe Tasks' ObjectDetector (mediapipe 1.2.3 from PyPI) on a non-square
image: a ``--resize stretch`` file gives the kit's own detections as it is; a ``letterbox`` file
gives them when the app pads the image to a square with grey first, and not without (MediaPipe
stretches every image).

MediaPipe cannot share the kit's pinned environment (it needs absl-py 2, tfmot 0.8.1 absl-py 1),
so ``bash run.sh test`` installs it into a venv of its own (tests/mediapipe-requirements.txt) and
names that venv's python in MOBILE_SPINENET_MEDIAPIPE_PYTHON; the detector runs there."""
import json
import os
import subprocess

import numpy as np
import pytest

from mobile_spinenet.backend import keras
from mobile_spinenet.box_coder import pairwise_iou
from mobile_spinenet.data.images import decode_rgb
from mobile_spinenet.eval.predict import predict_images
from mobile_spinenet.quantization.export import ExportOptions

SIZE, THRESHOLD = 128, 0.3


LABELS = ["red", "green", "blue"]


def colour_cells(size: int = SIZE, cell: int = 16):
    """A detector with a clear answer: an ``8x8`` grid of cells, each one anchor (the cell), class
    "red" / "green" / "blue" when the cell's mean colour is that pure colour, box codes zero.
    Its detections follow the image smoothly, so a runtime's resampling cannot flip them; a
    randomly initialised detector's saturated, near-tied scores do flip under NMS."""
    inputs = keras.Input((size, size, 3), batch_size=1, name="image")
    means = keras.layers.AveragePooling2D(cell)(inputs)  # [-1, 1] per channel and cell
    logits = keras.layers.Conv2D(3, 1, name="colour")(means)
    codes = keras.layers.Conv2D(4, 1, name="codes")(means)
    grid = size // cell
    model = keras.Model(inputs, {"classes": keras.layers.Reshape((grid * grid, 3))(logits),
                                 "boxes": keras.layers.Reshape((grid * grid, 4))(codes)})
    # pure red (1, -1, -1): logit 8 + 4 + 4 - 4 = 12; grey (0, 0, 0) and white and black: -4
    kernel = np.full((1, 1, 3, 3), -4.0, np.float32)
    for c in range(3):
        kernel[0, 0, c, c] = 8.0
    model.get_layer("colour").set_weights([kernel, np.full(3, -4.0, np.float32)])
    model.get_layer("codes").set_weights([np.zeros((1, 1, 3, 4), np.float32), np.zeros(4, np.float32)])
    anchors = np.array([[y * cell, x * cell, (y + 1) * cell, (x + 1) * cell] for y in range(grid) for x in range(grid)],
                       np.float32)
    return model, anchors


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The detector through the kit's conversion and metadata, once per resize mode, and a 4:1
    image (grey, a red band over columns 64-192 of 512, full height)."""
    from PIL import Image

    from mobile_spinenet.quantization.export import convert
    from mobile_spinenet.quantization.metadata import attach_metadata

    root = tmp_path_factory.mktemp("mediapipe")
    model, anchors = colour_cells()
    flatbuffer = convert(model, anchors, ExportOptions(quant="fp32"))
    files = {}
    for resize in ("letterbox", "stretch"):
        files[resize] = str(root / f"{resize}.tflite")
        with open(files[resize], "wb") as f:
            f.write(attach_metadata(flatbuffer, "colour cells", f"colour-cell detector, {resize}", LABELS,
                                    resize=resize))
    wide = np.full((128, 512, 3), 128, np.uint8)
    wide[:, 64:192] = (255, 0, 0)
    Image.fromarray(wide).save(root / "wide.png")
    return {**files, "image": str(root / "wide.png"), "root": root}


MEDIAPIPE_PYTHON = os.environ.get("MOBILE_SPINENET_MEDIAPIPE_PYTHON", "")
DETECT = r"""
import json, sys
import numpy as np
from PIL import Image
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import ObjectDetector, ObjectDetectorOptions

model, image, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
options = ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=model), score_threshold=threshold,
                                max_results=100)
pixels = np.ascontiguousarray(np.asarray(Image.open(image).convert("RGB")))
with ObjectDetector.create_from_options(options) as detector:
    result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
found = []
for detection in result.detections:
    box = detection.bounding_box
    for category in detection.categories:  # MediaPipe merges one box's classes into one detection
        found.append({"label": category.category_name, "score": category.score,
                      "box_xyxy": [box.origin_x, box.origin_y, box.origin_x + box.width, box.origin_y + box.height]})
print(json.dumps(found))
"""
pytestmark = pytest.mark.skipif(not os.path.isfile(MEDIAPIPE_PYTHON),
                                reason="MediaPipe's own venv is made by `bash run.sh test` (it conflicts with the "
                                       "kit's pinned stack); run the tests that way")


def _mediapipe(path: str, pixels: np.ndarray, folder) -> list:
    from PIL import Image

    image = os.path.join(str(folder), f"mediapipe_input_{pixels.shape[0]}x{pixels.shape[1]}.png")
    Image.fromarray(pixels).save(image)
    result = subprocess.run([MEDIAPIPE_PYTHON, "-c", DETECT, path, image, str(THRESHOLD)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _kit(path: str, image: str, out) -> list:
    return predict_images(path, [image], str(out), THRESHOLD)[0]["detections"]


def _agreement(kit: list, other: list, width: int, height: int) -> float:
    """Share of the kit's detections that ``other`` has too (same label, IoU >= 0.5), boxes
    clipped to the image as the kit clips them (MediaPipe does not)."""
    if not kit:
        return float("nan")
    clip = lambda b: [min(max(b[0], 0), width), min(max(b[1], 0), height),  # noqa: E731
                      min(max(b[2], 0), width), min(max(b[3], 0), height)]
    matched = 0
    for detection in kit:
        x0, y0, x1, y1 = detection["box_xyxy"]
        for candidate in other:
            cx0, cy0, cx1, cy1 = clip(candidate["box_xyxy"])
            iou = pairwise_iou(np.array([[y0, x0, y1, x1]], np.float64), np.array([[cy0, cx0, cy1, cx1]], np.float64))
            if candidate["label"] == detection["label"] and iou[0, 0] >= 0.5:
                matched += 1
                break
    return matched / len(kit)


def test_the_mode_is_recorded_in_the_metadata_and_used_by_the_kit(exports):
    from mobile_spinenet.eval.evaluate import load_detector
    from mobile_spinenet.quantization.metadata import read_metadata, resize_of

    for resize in ("letterbox", "stretch"):
        assert resize_of(read_metadata(open(exports[resize], "rb").read())) == resize
        detector = load_detector(exports[resize])
        assert detector.resize == resize and detector.names == LABELS


def test_mediapipe_agrees_with_a_stretch_file_and_with_a_padded_letterbox_file(exports, tmp_path):
    pixels = decode_rgb(exports["image"])
    height, width = pixels.shape[:2]
    assert width == 4 * height
    # stretch: MediaPipe on the image as it is == the kit
    kit = _kit(exports["stretch"], exports["image"], tmp_path / "stretch")
    assert len(kit) == 16 and {d["label"] for d in kit} == {"red"}  # 2 columns x 8 rows of 64x16 px cells
    stretched = _agreement(kit, _mediapipe(exports["stretch"], pixels, tmp_path), width, height)
    # letterbox: the kit's detections, MediaPipe on the raw image and on the image padded with grey
    kit = _kit(exports["letterbox"], exports["image"], tmp_path / "letterbox")
    assert len(kit) == 4  # 2 columns x 2 rows of 64x64 px cells: the image fills the top quarter
    raw = _agreement(kit, _mediapipe(exports["letterbox"], pixels, tmp_path), width, height)
    padded_pixels = np.full((width, width, 3), 128, np.uint8)  # bottom padding: the kit pads with 0 = pixel 127.5
    padded_pixels[:height] = pixels
    padded = _agreement(kit, _mediapipe(exports["letterbox"], padded_pixels, tmp_path), width, width)
    print("AGREEMENT", json.dumps({"stretch": stretched, "letterbox_raw": raw, "letterbox_padded": padded}))
    assert stretched >= 0.9 and padded >= 0.9
    assert raw < padded - 0.2  # without padding, a letterbox file loses detections under MediaPipe
