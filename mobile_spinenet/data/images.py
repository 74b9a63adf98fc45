"""The one image decoder of the kit: training, evaluation, calibration, ``predict`` and
``benchmark`` all see the same pixels.

- EXIF orientation is applied: an image is what a viewer displays, and its COCO/VOC boxes are
  read for that displayed image (the convention of COCO's own tools and of phone galleries).
- 16-bit images are scaled to 8 bits (``round(v / 257)``), not clipped to white.
- Grey, palette, RGBA (alpha dropped), CMYK and YCbCr images become RGB.

It needs only PIL and numpy (no TensorFlow), so the benchmark's child process can use it."""
from __future__ import annotations

import numpy as np

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
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path} is not a readable image ({error})") from None


def letterbox_pixels(pixels: np.ndarray, size: int) -> tuple:
    """``([1, size, size, 3]`` float in [-1, 1], scale``)``: long side resized to ``size``
    (bilinear), zero-padded bottom/right, as the models take it without TensorFlow."""
    from PIL import Image

    height, width = pixels.shape[:2]
    scale = size / max(width, height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(pixels).resize((new_width, new_height), Image.BILINEAR), np.float32)
    square = np.zeros((1, size, size, 3), np.float32)
    square[0, :new_height, :new_width] = resized / 127.5 - 1.0
    return square, scale


def letterbox(path: str, size: int) -> np.ndarray:
    """The image file at ``path`` decoded (:func:`decode_rgb`) and letterboxed to ``[1, size, size, 3]``."""
    return letterbox_pixels(decode_rgb(path), size)[0]
