"""The bundled Fashion-MNIST subset the demo data is drawn from.

``fashion_mnist_glyphs.npz`` holds a few thousand 28x28 grayscale photos of clothing from
Fashion-MNIST (Zalando SE, MIT/Expat license, see ``FASHION_MNIST_LICENSE.txt``): the train
split's glyphs come from Fashion-MNIST's training set, the val split's from its test set, so
the two never share a glyph. :func:`build_subset` rebuilds the file from the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
"""
from __future__ import annotations

import gzip
import io
import os
from functools import lru_cache

import numpy as np

CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")
GLYPHS_PATH = os.path.join(os.path.dirname(__file__), "fashion_mnist_glyphs.npz")
DEBIAN_SOURCE = "/usr/share/datasets/fashion-mnist"


def _read_idx(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist (a Fashion-MNIST folder holds train-images-idx3-ubyte.gz, "
                         "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz)")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
        if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
            raise ValueError("not an IDX file of unsigned bytes")
        ndim = data[3]
        shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path} cannot be read as a gzipped IDX file ({error})") from None


def read_fashion_mnist(source_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N])`` of a Fashion-MNIST folder's ``"train"`` (60,000)
    or ``"t10k"`` (test, 10,000) files, as Zalando publishes them."""
    images = _read_idx(os.path.join(source_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = _read_idx(os.path.join(source_dir, f"{split}-labels-idx1-ubyte.gz"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"{source_dir}: {split} images {images.shape} and labels {labels.shape} are not "
                         "Fashion-MNIST's [N, 28, 28] and [N]")
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise ValueError(f"{source_dir}: {split} labels go up to {int(labels.max())}; Fashion-MNIST has "
                         f"{len(CLASS_NAMES)} classes")
    return images, labels


def pick_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator, source: str = "") -> np.ndarray:
    """Indices of ``per_class`` random items of every class drawn with ``rng``, class by class."""
    picked = []
    for c, name in enumerate(CLASS_NAMES):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"{source}: class {name!r} has {len(members)} images, fewer than the "
                             f"{per_class} a class asked for")
        picked.append(rng.choice(members, per_class, replace=False))
    return np.concatenate(picked)


def build_subset(source_dir: str = DEBIAN_SOURCE, out_path: str = GLYPHS_PATH,
                 train_per_class: int = 250, val_per_class: int = 100, seed: int = 0) -> str:
    """Pick ``train_per_class`` / ``val_per_class`` glyphs of every class from Fashion-MNIST's
    train / test files and save them as a compressed npz."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, prefix, per_class in (("train", "train", train_per_class), ("val", "t10k", val_per_class)):
        images, labels = read_fashion_mnist(source_dir, prefix)
        picked = pick_per_class(labels, per_class, rng, source_dir)
        arrays[f"{split}_images"] = images[picked]
        arrays[f"{split}_labels"] = labels[picked]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    from mobile_spinenet.io_utils import write_atomically
    write_atomically(out_path, buffer.getvalue())
    return out_path


@lru_cache(maxsize=2)
def load_glyphs(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N])`` of the bundled ``"train"`` or ``"val"`` glyphs."""
    if split not in ("train", "val"):
        raise ValueError(f"glyph split must be 'train' or 'val', got {split!r}")
    with np.load(GLYPHS_PATH) as data:
        return data[f"{split}_images"], data[f"{split}_labels"]
