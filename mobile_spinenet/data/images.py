"""The one image decoder of the kit: training, evaluation, calibration, ``predict`` and
``benchmark`` all see the same pixels.

- EXIF orientation is applied: an image is what a viewer displays, and its COCO/VOC boxes are
  read for that displayed image (the convention of COCO's own tools and of phone galleries).
- 16-bit images are scaled to 8 bits (``round(v / 257)``), not clipped to white.
- Grey, palette, RGBA (alpha dropped), CMYK and YCbCr images become RGB.

It needs only PIL and numpy (no TensorFlow), so the benchmark's child process can use it."""
from __future__ import annotations

import os

import numpy as np

# The files a folder of images is read for (class folders; telling them from detection data)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_names(folder: str) -> list:
    """The image files in ``folder`` by name (:data:`IMAGE_EXTENSIONS`, hidden files left out), sorted."""
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))

# The kit's one input normalisation: models take (pixel - PIXEL_MEAN) / PIXEL_STD, in [-1, 1].
PIXEL_MEAN = PIXEL_STD = 127.5
# What a model may expect inside, after that: "kit" the same; "imagenet" (pixel - mean) / std per
# RGB channel, as Model Garden's detectors were trained (imported models convert in their first layer).
INPUT_NORMALIZATIONS = ("kit", "imagenet")
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def input_affine(normalization: str) -> tuple:
    """``(scale, offset)`` per RGB channel taking the kit's input ``(pixel - 127.5) / 127.5`` to
    ``normalization``'s: ``x' = scale * x + offset``."""
    if normalization not in INPUT_NORMALIZATIONS:
        raise ValueError(f"input normalization must be one of {', '.join(INPUT_NORMALIZATIONS)}, got {normalization!r}")
    if normalization == "kit":
        return (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    scale = tuple(PIXEL_STD / s for s in IMAGENET_STD)
    offset = tuple((PIXEL_MEAN - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    return scale, offset
# How an image becomes the model's square: "letterbox" keeps the aspect ratio and pads
# bottom/right (the kit's training and evaluation default); "stretch" resizes both sides to
# the square (what MediaPipe Tasks and the Task Library feed a model).
RESIZE_MODES = ("letterbox", "stretch")
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # width and height swap when these are applied
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def exif_orientation(image) -> int:
    """The EXIF orientation tag of an open PIL image (1, upright, when absent)."""
    try:
        return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (ValueError, TypeError, SyntaxError, OSError):
        return 1


def displayed_size(image) -> tuple:
    """(width, height) of an open PIL image as displayed (after its EXIF orientation)."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in ROTATED_ORIENTATIONS else (width, height)


def to_rgb(image) -> np.ndarray:
    """``[H, W, 3]`` uint8 of an open PIL image, oriented as displayed."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image) if exif_orientation(image) != 1 else image
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "I" and values.max(initial=0) <= 255:
            grey = values  # 32-bit integer image holding 8-bit values
        else:
            grey = values / 257.0
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.round(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_rgb(path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of the image file at ``path`` (str, bytes or a 0-d array), as displayed.
    Raises ``ValueError`` naming the file when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    path = path.item() if isinstance(path, np.ndarray) else path  # from tf.numpy_function
    path = path.decode() if isinstance(path, bytes) else path
    try:
        with Image.open(path) as image:
            return to_rgb(image)
    except Image.DecompressionBombError as error:
        raise ValueError(f"{path} is too large to decode ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path} is not a readable image ({error})") from None


def _bilinear_taps(source: int, target: int) -> tuple:
    """Source indices and weights of TF's bilinear resize (half-pixel centres, no antialiasing),
    in its float32 arithmetic: ``in = (i + 0.5) * scale - 0.5``, taps floor/ceil, clamped."""
    scale = np.float32(source / target)
    centre = (np.arange(target, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centre)
    low = np.maximum(floor.astype(np.int64), 0)
    high = np.minimum(np.ceil(centre).astype(np.int64), source - 1)
    return low, high, (centre - floor).astype(np.float32)


def resize_bilinear(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W, C]`` -> ``[height, width, C]`` float32 as ``tf.image.resize(method="bilinear")``
    computes it (what training and evaluation use), without TensorFlow: along x first, then y,
    each as ``a + (b - a) * lerp``."""
    values = pixels.astype(np.float32)
    top, bottom, wy = _bilinear_taps(values.shape[0], height)
    left, right, wx = _bilinear_taps(values.shape[1], width)
    wx = wx[None, :, None]
    upper = values[top][:, left] + (values[top][:, right] - values[top][:, left]) * wx
    lower = values[bottom][:, left] + (values[bottom][:, right] - values[bottom][:, left]) * wx
    return (upper + (lower - upper) * wy[:, None, None]).astype(np.float32)


def check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ValueError(f"--resize must be {' or '.join(RESIZE_MODES)}, got {resize!r}")
    return resize


def fit_pixels(pixels: np.ndarray, size: int, resize: str = "letterbox") -> tuple:
    """``([1, size, size, 3]`` float in [-1, 1], ``(scale_y, scale_x))``: the image letterboxed
    (long side to ``size``, padded bottom/right) or stretched to the square, resized exactly as
    the training and evaluation pipeline does, without TensorFlow."""
    check_resize(resize)
    height, width = pixels.shape[:2]
    if resize == "stretch":
        scale_y, scale_x = size / height, size / width
    else:
        scale_y = scale_x = size / max(width, height)
    new_width, new_height = max(1, round(width * scale_x)), max(1, round(height * scale_y))
    normalized = pixels.astype(np.float32) / PIXEL_STD - PIXEL_MEAN / PIXEL_STD
    square = np.zeros((1, size, size, 3), np.float32)
    square[0, :new_height, :new_width] = resize_bilinear(normalized, new_height, new_width)
    return square, (scale_y, scale_x)


def letterbox_pixels(pixels: np.ndarray, size: int) -> tuple:
    """:func:`fit_pixels` letterboxed: ``(square, scale)``."""
    square, (scale, _) = fit_pixels(pixels, size, "letterbox")
    return square, scale


def letterbox(path: str, size: int, resize: str = "letterbox") -> np.ndarray:
    """The image file at ``path`` decoded (:func:`decode_rgb`) and fitted to ``[1, size, size, 3]``."""
    return fit_pixels(decode_rgb(path), size, resize)[0]
