"""YOLO-layout detection datasets (Ultralytics, Darknet): images in an ``images`` folder, one
text file per image in the parallel ``labels`` folder (``images/train/a.jpg`` ->
``labels/train/a.txt``) with a line ``class cx cy w h`` per object, normalised to the image's
width and height, and a ``data.yaml`` naming the classes (``names:``, a list or ``{index: name}``)
and the splits (``train:``, ``val:``, ``test:``: image folders or ``.txt`` lists of images,
relative to ``path:``, itself relative to the YAML).

A split is read by its image folder (``DATASET/images/train``), or by a folder holding
``images/`` and ``labels/`` (one split); the class names come from a ``data.yaml`` (or any
``*.yaml`` with ``names:``) in that folder or up to two above it, or from a ``classes.txt``
(LabelImg, Darknet). Category ids are the class index + 1 (COCO's ids start at 1), so a set
converted to COCO and back keeps its classes.

Rules for bad input (as the COCO and VOC readers; each counted and logged with the file):

=============================  ==================================================
no label file                  the image has no objects (kept as background)
label file without an image    reported; nothing to train on
class index not in names       the box is skipped
coordinate outside 0..1        the box is skipped
not 5 numbers (or a polygon)   the line is skipped; a segment line (class and
                               x y pairs) gives the polygon's box
zero width or height           the box is skipped
=============================  ==================================================
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mobile_spinenet.data.images import image_names
from mobile_spinenet.data.records import DataError, DataIssues

NAMES_FILES = ("classes.txt", "obj.names")
SPLITS = ("train", "val", "test")
COORDINATE_SLACK = 1e-6  # exporters write 1.0000001 for an edge; anything further out is a bad box


@dataclass
class YoloDataFile:
    """A ``data.yaml``: its class names and each split's image source (folder or ``.txt`` list)."""

    path: str
    names: list
    splits: dict


def label_path(image_path: str) -> str:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the suffix ``.txt``."""
    head, sep, tail = image_path.rpartition(f"{os.sep}images{os.sep}")
    base = f"{head}{os.sep}labels{os.sep}{tail}" if sep else os.path.join(os.path.dirname(image_path), tail)
    return os.path.splitext(base)[0] + ".txt"


def _names(value, where: str) -> list:
    if isinstance(value, list) and all(isinstance(n, (str, int)) for n in value) and value:
        return [str(n) for n in value]
    if isinstance(value, dict) and value:
        keys = sorted(value)
        if any(not isinstance(k, int) or isinstance(k, bool) for k in keys) or keys != list(range(len(keys))):
            raise DataError(f"{where}: names must be a list, or a mapping of every index 0..{len(keys) - 1} to "
                            f"a name; got the keys {keys}")
        return [str(value[k]) for k in keys]
    raise DataError(f"{where}: names must be a non-empty list of class names or a mapping index: name")


def read_data_file(path: str) -> YoloDataFile:
    """Parse a YOLO ``data.yaml``: one ``DataError`` line naming the file and the field when bad."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise DataError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or "names" not in data:
        raise DataError(f"{path} is no YOLO data file: it needs `names:` (and the splits train:, val:)")
    names = _names(data["names"], f"{path} field names")
    if "nc" in data and data["nc"] != len(names):
        raise DataError(f"{path}: nc is {data['nc']} but names lists {len(names)} classes")
    folder = os.path.dirname(os.path.abspath(path))
    root = data.get("path") or "."
    if not isinstance(root, str):
        raise DataError(f"{path} field path must be a folder name, got {root!r}")
    root = os.path.normpath(os.path.join(folder, root))
    splits = {}
    for split in SPLITS:
        value = data.get(split)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataError(f"{path} field {split} must be one image folder or .txt list (relative to {root}); "
                            f"got {value!r}")
        splits[split] = os.path.normpath(os.path.join(root, value))
    return YoloDataFile(os.path.abspath(path), names, splits)


def is_yolo_data_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith((".yaml", ".yml"))


def split_images(source: str) -> Optional[list]:
    """The image paths of a YOLO split: a folder inside ``images/`` whose parallel ``labels/``
    folder exists, a folder holding ``images/`` and ``labels/``, or a ``.txt`` list of image paths;
    None when ``source`` is none of these."""
    if os.path.isfile(source) and source.endswith(".txt"):
        folder = os.path.dirname(os.path.abspath(source))
        with open(source) as f:
            entries = [line.strip() for line in f if line.strip()]
        return [os.path.normpath(e if os.path.isabs(e) else os.path.join(folder, e)) for e in entries]
    if not os.path.isdir(source):
        return None
    source = os.path.abspath(source)
    if os.path.isdir(os.path.join(source, "images")) and os.path.isdir(os.path.join(source, "labels")):
        source = os.path.join(source, "images")
    labels = os.path.dirname(label_path(os.path.join(source, "x.jpg")))
    names = image_names(source)
    if labels == source or not os.path.isdir(labels) or not names:
        return None
    return [os.path.join(source, name) for name in names]


def splits_below(folder: str) -> list:
    """The YOLO splits of a dataset folder laid out as ``images/<split>`` + ``labels/<split>``."""
    images = os.path.join(folder, "images")
    if not os.path.isdir(images) or not os.path.isdir(os.path.join(folder, "labels")):
        return []
    return [os.path.join(images, name) for name in sorted(os.listdir(images))
            if split_images(os.path.join(images, name)) is not None]


def find_names(images_folder: str) -> tuple:
    """``(names, file)`` for a split: the ``names`` of a YOLO data file (``data.yaml`` first, then any
    ``*.yaml`` with names) or a ``classes.txt`` / ``obj.names`` in the dataset's folders: the
    split's, its parent's and the one above (``DATASET/images/train`` -> ``DATASET``)."""
    folder = os.path.abspath(images_folder)
    for _ in range(4):
        candidates = [os.path.join(folder, "data.yaml")] + sorted(
            os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith((".yaml", ".yml"))
            and n != "data.yaml")
        for candidate in candidates:
            if os.path.isfile(candidate):
                try:
                    return read_data_file(candidate).names, candidate
                except DataError:
                    if os.path.basename(candidate) == "data.yaml":
                        raise
        for name in NAMES_FILES:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                with open(candidate) as f:
                    names = [line.strip() for line in f if line.strip()]
                if names:
                    return names, candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    raise DataError(f"{images_folder} is a YOLO split without class names: put a data.yaml (names: [...]) or a "
                    f"classes.txt (one name a line) in the dataset's folder")


def parse_label_line(line: str, what: str, names: list, issues: DataIssues):
    """``(class, (cx, cy, w, h))`` of a label line, or None (with an issue)."""
    fields = line.split()
    try:
        values = [float(v) for v in fields]
    except ValueError:
        issues.add("bad label line", f"{what} is not numbers ({line.strip()!r}); skipped")
        return None
    if not values or not values[0].is_integer() or not 0 <= values[0] < len(names):
        issues.add("bad class index", f"{what} has class {fields[0] if fields else '?'}; the names list "
                   f"{len(names)} classes (0..{len(names) - 1}); box skipped")
        return None
    coordinates = values[1:]
    if len(coordinates) >= 6 and len(coordinates) % 2 == 0 and len(coordinates) != 4:  # a segment: x y pairs
        xs, ys = coordinates[0::2], coordinates[1::2]
        coordinates = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
        points = xs + ys
    elif len(coordinates) == 4:
        cx, cy, w, h = coordinates
        points = [cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2]
    else:
        issues.add("bad label line", f"{what} has {len(fields)} fields; a box line is `class cx cy w h`; skipped")
        return None
    if not all(np.isfinite(coordinates)) or any(p < -COORDINATE_SLACK or p > 1 + COORDINATE_SLACK for p in points):
        issues.add("coordinates outside 0..1", f"{what} ({line.strip()}) is not normalised to the image; "
                   f"box skipped")
        return None
    if not (coordinates[2] > 0 and coordinates[3] > 0):
        issues.add("bad box", f"{what} has width {coordinates[2]} and height {coordinates[3]}; box skipped")
        return None
    return int(values[0]), tuple(coordinates)
