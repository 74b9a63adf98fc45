"""COCO (instances JSON + image folder), Pascal VOC (XML folder) and YOLO-layout
(``images/`` + ``labels/``, :mod:`mobile_spinenet.data.yolo`) readers.

Rules for bad input (each case is counted in :class:`DataIssues`, and logged with the file
or annotation id):

========================  =====================================================
malformed JSON / XML      JSON: fatal ``DataError`` with line and column; VOC: that
                          XML file is skipped
missing / corrupt image   the image and its boxes are skipped
size differs from JSON    the real size is used
grayscale / RGBA / CMYK   converted to RGB when decoded (alpha dropped)
box w or h <= 0           the box is skipped
box outside the image     clipped to the image; skipped if nothing is left
unknown category id       the box is skipped
unknown image id          the box is skipped
crowd box (iscrowd=1)     not trained on (pycocotools ignores it in evaluation)
image without boxes       kept as a background-only image
no box in any image       fatal ``DataError`` (nothing to train on or score)
duplicate ids             fatal ``DataError`` naming them (images, annotations,
                          categories)
non-integer image id      fatal ``DataError`` (COCO ids are integers); in an
                          annotation, the box is skipped
file_name not a string    the image entry is skipped
category id not integral  the box is skipped (``2.9`` is no category)
bbox with NaN / inf       the box is skipped
header of > 178M pixels   the image is skipped ("too large"), never decoded
EXIF orientation          applied: boxes are for the image as displayed
16-bit image              scaled to 8 bits by the one decoder (data/images.py)
========================  =====================================================
"""
from __future__ import annotations

import json
import math
import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Optional

import numpy as np

from mobile_spinenet.data.images import displayed_size, exif_orientation, image_names
from mobile_spinenet.data.masks import MaskError, decode_segmentation
from mobile_spinenet.data.records import DataError, DataIssues, DetectionDataset, ImageRecord, LabelMap
from mobile_spinenet.data import yolo

FULL_CHECK_LIMIT = 5000  # decode every image fully when a dataset has at most this many


def _image_size(path: str, issues: DataIssues, full_check: bool) -> Optional[tuple]:
    """(width, height, mode) of an image file, or None (with an issue) when it can't be used."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        issues.add("missing image", f"{path} does not exist; image skipped")
        return None
    try:
        with Image.open(path) as image:
            size, mode, orientation = displayed_size(image), image.mode, exif_orientation(image)
            if full_check:
                image.load()
    except Image.DecompressionBombError as error:  # a header claiming more pixels than any photo has
        issues.add("too large", f"{path} is too large to decode ({error}); image skipped")
        return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        issues.add("corrupt image", f"{path} cannot be decoded ({error}); image skipped")
        return None
    if mode not in ("RGB", "YCbCr"):
        issues.add("converted to RGB", f"{path} is {mode}; converted to RGB when decoded")
    if orientation != 1:
        issues.add("EXIF orientation", f"{path} has EXIF orientation {orientation}: it is decoded as displayed "
                   f"({size[0]}x{size[1]}) and its boxes are read for that image")
    return size[0], size[1], mode


def _image_sizes(paths: list, issues: DataIssues, full_check: bool) -> list:
    """:func:`_image_size` of each path, in order; with ``full_check`` decoded in parallel threads
    (Pillow decodes outside the GIL), with a progress bar on a terminal (not in logs)."""
    if not full_check or len(paths) < 2:
        return [_image_size(path, issues, full_check) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    from mobile_spinenet.progress import counted

    class Collected(list):  # a thread's issues, added to ``issues`` in the images' order afterwards
        def add(self, kind: str, message: str) -> None:
            self.append((kind, message))

    def one(path):
        collected = Collected()
        return _image_size(path, collected, True), collected

    sizes = []
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for found, collected in counted(pool.map(one, paths), "decoding images", total=len(paths),
                                        enabled=len(paths) >= 200 and sys.stderr.isatty()):
            for kind, message in collected:
                issues.add(kind, message)
            sizes.append(found)
    return sizes


def _clip_box(x, y, w, h, width, height, what: str, issues: DataIssues):
    """(ymin, xmin, ymax, xmax) clipped to the image, or None when unusable."""
    if not (w > 0 and h > 0):
        issues.add("bad box", f"{what} has width {w} and height {h}; box skipped")
        return None
    ymin, xmin, ymax, xmax = max(y, 0.0), max(x, 0.0), min(y + h, float(height)), min(x + w, float(width))
    if ymax - ymin < 1.0 or xmax - xmin < 1.0:
        issues.add("box outside image", f"{what} [{x}, {y}, {w}, {h}] lies outside the "
                   f"{width}x{height} image; box skipped")
        return None
    if (ymin, xmin, ymax, xmax) != (y, x, y + h, x + w):
        issues.add("box clipped", f"{what} [{x}, {y}, {w}, {h}] extends past the {width}x{height} image; clipped")
    return ymin, xmin, ymax, xmax


def load_coco_json(path: str) -> dict:
    """Parse a COCO instances file; a clear ``DataError`` for unreadable or malformed files."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"annotation file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error.msg} at line {error.lineno} "
                        f"column {error.colno}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: field {key!r} is missing or not a list")
    for i, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or not _is_integer(category.get("id")):
            raise DataError(f"{path}: categories[{i}] has no integer 'id'")
    for i, image in enumerate(data["images"]):
        if isinstance(image, dict) and "id" in image and not _is_integer(image["id"]):
            raise DataError(f"{path}: images[{i}] has id {image['id']!r}; COCO image ids are integers "
                            f"(pycocotools and COCO results files need them): renumber the images")
    for key in ("images", "annotations", "categories"):
        ids = [e["id"] for e in data[key] if isinstance(e, dict) and "id" in e]
        repeated = sorted((i for i, n in Counter(map(repr, ids)).items() if n > 1))
        if repeated:
            raise DataError(f"{path}: {key} ids must be unique; repeated: {', '.join(repeated[:10])}"
                            + (f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""))
    return data


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_boxes(records: list, source: str) -> None:
    """A dataset without a single box can neither train a detector nor score one."""
    if not any(len(r.boxes) for r in records):
        raise DataError(f"{source}: none of its {len(records)} usable images has a usable box "
                        f"(see the warnings above); nothing to train on or to score against")


def read_coco(annotation_file: str, images_dir: str, label_map: Optional[LabelMap] = None,
              full_check: Optional[bool] = None, masks: bool = False) -> DetectionDataset:
    """Read a COCO instances JSON and its image folder into records.

    ``label_map`` fixes the class indices (e.g. a val set read with the training map);
    by default it comes from the file's categories. ``masks``: also read each object's
    ``segmentation`` (polygons or RLE), decoded once to check it; an object whose mask is missing
    or unusable is reported ("bad mask", with the reason) and skipped, box and all.
    """
    data = load_coco_json(annotation_file)
    issues = DataIssues(source=annotation_file)
    label_map = label_map or LabelMap.from_categories(data["categories"])
    full_check = len(data["images"]) <= FULL_CHECK_LIMIT if full_check is None else full_check
    images = {}
    known_ids = {e.get("id") for e in data["images"] if isinstance(e, dict)}
    entries = []
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            issues.add("bad image entry", f"{annotation_file}: images[{i}] lacks 'id' or 'file_name'; skipped")
        elif not isinstance(entry["file_name"], str) or not entry["file_name"]:
            issues.add("bad image entry", f"{annotation_file}: images[{i}] has file_name {entry['file_name']!r}, "
                       f"not a file name; skipped")
        else:
            entries.append(entry)
    paths = [os.path.join(images_dir, e["file_name"]) for e in entries]
    for entry, path, found in zip(entries, paths, _image_sizes(paths, issues, full_check)):
        if found is None:
            continue
        width, height, _ = found
        if (entry.get("width"), entry.get("height")) != (width, height):
            issues.add("size mismatch", f"image id {entry['id']} ({path}) is {width}x{height}, the JSON says "
                       f"{entry.get('width')}x{entry.get('height')}; the real size is used")
        images[entry["id"]] = (path, width, height, [], [], [])
    for i, ann in enumerate(data["annotations"]):
        ann_id = ann.get("id", f"#{i}") if isinstance(ann, dict) else f"#{i}"
        what = f"annotation {ann_id}"
        if not isinstance(ann, dict):
            issues.add("bad box", f"{what} is not an object; skipped")
            continue
        if ann.get("iscrowd", 0):
            issues.add("crowd box", f"{what} is a crowd region; not trained on")
            continue
        if not _is_integer(ann.get("image_id")):
            issues.add("unknown image id", f"{what} has image_id {ann.get('image_id')!r}, not an integer image "
                       f"id; skipped")
            continue
        image = images.get(ann.get("image_id"))
        if image is None:
            if ann.get("image_id") not in known_ids:
                issues.add("unknown image id", f"{what} refers to image id {ann.get('image_id')!r}; skipped")
            continue  # boxes of skipped images are dropped silently: the image was reported
        index = label_map.index_of(ann.get("category_id"))
        if index is None:
            issues.add("unknown category", f"{what} has category id {ann.get('category_id')!r}, "
                       f"not in the categories; skipped")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
            issues.add("bad box", f"{what} has bbox {bbox!r}, expected [x, y, width, height]; skipped")
            continue
        path, width, height, boxes, classes, segmentations = image
        box = _clip_box(*map(float, bbox), width, height, f"{what} (image {ann['image_id']})", issues)
        if box is None:
            continue
        if masks:
            try:
                decode_segmentation(ann.get("segmentation"), height, width)
            except MaskError as error:
                issues.add("bad mask", f"{what} (image {ann['image_id']}, {width}x{height}): {error}; skipped")
                continue
            segmentations.append(ann["segmentation"])
        boxes.append(box)
        classes.append(index)
    records = []
    for image_id, (path, width, height, boxes, classes, segmentations) in images.items():
        if not boxes:
            issues.add("no boxes", f"image id {image_id} ({path}) has no usable boxes; kept as background")
        records.append(ImageRecord(image_id, path, width, height,
                                   np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int32),
                                   segmentations if masks else None))
    if not records:
        raise DataError(f"{annotation_file}: no usable images (see the warnings above)")
    if masks and issues.counts["bad mask"] and not any(len(r.boxes) for r in records):
        raise DataError(f"{annotation_file}: all {issues.counts['bad mask']} objects were skipped for their masks "
                        f"(see the warnings above); instance segmentation needs a usable `segmentation` per object")
    _require_boxes(records, annotation_file)
    return DetectionDataset(records, label_map, issues, annotation_file)


def read_voc(folder: str, label_map: Optional[LabelMap] = None, split: Optional[str] = None,
             full_check: Optional[bool] = None) -> DetectionDataset:
    """Read a Pascal VOC folder (``Annotations/*.xml`` + ``JPEGImages/``); ``split`` picks
    ``ImageSets/Main/<split>.txt``. Class names are sorted to give category ids 1..K."""
    issues = DataIssues(source=folder)
    ann_dir = os.path.join(folder, "Annotations")
    if split:
        with open(os.path.join(folder, "ImageSets", "Main", f"{split}.txt")) as f:
            names = [line.split()[0] + ".xml" for line in f if line.strip()]
    else:
        names = sorted(n for n in os.listdir(ann_dir) if n.endswith(".xml"))
    parsed = []
    for name in names:
        path = os.path.join(ann_dir, name)
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as error:
            issues.add("bad annotation file", f"{path} cannot be parsed ({error}); skipped")
            continue
        parsed.append((path, root))
    if label_map is None:
        class_names = sorted({(o.findtext("name") or "").strip() for _, r in parsed for o in r.iter("object")} - {""})
        label_map = LabelMap(list(range(1, len(class_names) + 1)), class_names)
    full_check = len(parsed) <= FULL_CHECK_LIMIT if full_check is None else full_check
    records = []
    for image_id, (path, root) in enumerate(parsed, start=1):
        image_path = os.path.join(folder, "JPEGImages", root.findtext("filename") or
                                  os.path.basename(path)[:-4] + ".jpg")
        found = _image_size(image_path, issues, full_check)
        if found is None:
            continue
        width, height, _ = found
        boxes, classes = [], []
        for k, obj in enumerate(root.iter("object")):
            what = f"{path} object {k}"
            name = (obj.findtext("name") or "").strip()
            if name not in label_map.names:
                issues.add("unknown category", f"{what} has class {name!r}; skipped")
                continue
            if obj.findtext("difficult", "0").strip() == "1":
                issues.add("crowd box", f"{what} is marked difficult; not trained on")
                continue
            try:
                b = obj.find("bndbox")
                x1, y1, x2, y2 = (float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                issues.add("bad box", f"{what} has no numeric bndbox; skipped")
                continue
            box = _clip_box(x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1, width, height, what, issues)
            if box is not None:
                boxes.append(box)
                classes.append(label_map.names.index(name))
        if not boxes:
            issues.add("no boxes", f"{image_path} has no usable boxes; kept as background")
        records.append(ImageRecord(image_id, image_path, width, height,
                                   np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int32)))
    if not records:
        raise DataError(f"{folder}: no usable images (see the warnings above)")
    _require_boxes(records, folder)
    return DetectionDataset(records, label_map, issues)


def read_yolo(source: str, label_map: Optional[LabelMap] = None, full_check: Optional[bool] = None) -> DetectionDataset:
    """Read a YOLO split (:mod:`mobile_spinenet.data.yolo`): ``source`` is its image folder (or a
    folder with ``images/`` + ``labels/``, or a ``.txt`` list); the class names are the dataset's
    data.yaml or classes.txt. Class ``k`` is category id ``k + 1``; a given ``label_map`` is
    matched by class name."""
    images = yolo.split_images(source)
    if images is None:
        raise DataError(f"{source} is no YOLO split (an images/ folder with a parallel labels/ folder)")
    if not images:
        raise DataError(f"{source}: no images")
    names = yolo.find_names(source if os.path.isdir(source) else os.path.dirname(source))[0]
    issues = DataIssues(source=source)
    label_map = label_map or LabelMap(list(range(1, len(names) + 1)), list(names))
    image_stems = {os.path.splitext(yolo.label_path(p))[0] for p in images}
    for folder in sorted({os.path.dirname(yolo.label_path(p)) for p in images}):
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith(".txt") and os.path.splitext(os.path.join(folder, name))[0] not in image_stems:
                issues.add("label without image", f"{os.path.join(folder, name)} has no image in the split; "
                           f"nothing to train on")
    full_check = len(images) <= FULL_CHECK_LIMIT if full_check is None else full_check
    records = []
    for image_id, (path, found) in enumerate(zip(images, _image_sizes(images, issues, full_check)), start=1):
        if found is None:
            continue
        width, height, _ = found
        labels = yolo.label_path(path)
        boxes, classes = [], []
        if not os.path.isfile(labels):
            issues.add("no label file", f"{path} has no {labels}; kept as an image without objects")
            lines = []
        else:
            with open(labels) as f:
                lines = f.read().splitlines()
        for number, line in enumerate(lines, start=1):
            what = f"{labels} line {number}"
            parsed = yolo.parse_label_line(line, what, names, issues) if line.strip() else None
            if parsed is None:
                continue
            cls, (cx, cy, w, h) = parsed
            if names[cls] not in label_map.names:
                issues.add("unknown category", f"{what} has class {names[cls]!r}, not in the label map; skipped")
                continue
            box = _clip_box((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height, width, height,
                            what, issues)
            if box is not None:
                boxes.append(box)
                classes.append(label_map.names.index(names[cls]))
        if not boxes and lines:
            issues.add("no boxes", f"{path} has no usable boxes; kept as background")
        records.append(ImageRecord(image_id, path, width, height, np.asarray(boxes, np.float32).reshape(-1, 4),
                                   np.asarray(classes, np.int32)))
    if not records:
        raise DataError(f"{source}: no usable images (see the warnings above)")
    _require_boxes(records, source)
    return DetectionDataset(records, label_map, issues)


def yolo_split(data_file: str, split: str) -> str:
    """The image source of ``split`` in a YOLO data.yaml, or a one-line error naming the splits it has."""
    parsed = yolo.read_data_file(data_file)
    if split not in parsed.splits:
        raise DataError(f"{data_file} has no {split}: split (it has: {', '.join(parsed.splits) or 'none'})")
    return parsed.splits[split]


def split_of(data: str, split: str) -> str:
    """``data`` itself, or for a YOLO data.yaml its ``split`` (``train`` for training, ``val`` for
    scoring): what a command's ``--data`` names."""
    return yolo_split(data, split) if yolo.is_yolo_data_file(data) else data


def split_folders(data: str, val: Optional[str]) -> tuple:
    """``(train, val)`` of a command that takes both: ``data`` and ``val``; a YOLO data.yaml's
    train: and val: (``val`` wins); or ``data/train`` and ``data/val``."""
    if yolo.is_yolo_data_file(data):
        return yolo_split(data, "train"), val or yolo_split(data, "val")
    if val:
        return data, val
    train, val = os.path.join(data, "train"), os.path.join(data, "val")
    if not (os.path.isdir(train) and os.path.isdir(val)):
        raise ValueError(f"--data {data} has no train/ and val/ folders; pass the training set as --data "
                         f"and the validation set as --val (or a YOLO data.yaml)")
    return train, val


def find_coco_images_dir(annotation_file: str) -> str:
    """Guess the image folder of a COCO file: ``images/`` next to it, or COCO's own layout
    (``annotations/instances_val2017.json`` -> ``val2017/``)."""
    folder = os.path.dirname(os.path.abspath(annotation_file))
    stem = os.path.splitext(os.path.basename(annotation_file))[0]
    split = stem.split("_", 1)[1] if "_" in stem else stem
    for candidate in (os.path.join(folder, "images"), os.path.join(os.path.dirname(folder), split),
                      os.path.join(folder, split)):
        if os.path.isdir(candidate):
            return candidate
    raise DataError(f"cannot find the image folder of {annotation_file}: tried images/ next to it and "
                    f"{split}/ beside its folder; pass it explicitly")


def detection_layout(folder: str) -> Optional[str]:
    """The detection dataset :func:`read_dataset` finds in ``folder``: ``"coco"`` (``annotations.json``),
    ``"voc"`` (``Annotations/``), ``"yolo"`` (an ``images`` folder with a parallel ``labels/``), or None."""
    if os.path.isfile(os.path.join(folder, "annotations.json")):
        return "coco"
    if os.path.isdir(os.path.join(folder, "Annotations")):
        return "voc"
    if yolo.split_images(folder) is not None:
        return "yolo"
    return None


def split_to_pass(root: str, splits: list) -> str:
    """The split of ``root`` an error suggests when given the folder above the splits: val/ if there is one."""
    return os.path.join(root, "val" if "val" in splits else splits[0])


DATASET_PARTS = ("images", "JPEGImages", "Annotations")  # the folders inside a COCO or VOC dataset


def read_dataset(path: str, label_map: Optional[LabelMap] = None, images_dir: Optional[str] = None,
                 full_check: Optional[bool] = None, masks: bool = False) -> DetectionDataset:
    """Read what ``path`` is: a COCO JSON file, a folder with ``annotations.json`` (+ ``images/``),
    a Pascal VOC folder (``Annotations/`` + ``JPEGImages/``), or a YOLO split (its image folder, a
    folder with ``images/`` + ``labels/``, or a ``.txt`` list of images). ``masks``: with instance
    masks (COCO only, see :func:`read_coco`). A YOLO ``data.yaml`` names several splits: pass one
    (``read_dataset(yolo_split(file, "train"))``); the commands do that for ``--data data.yaml``."""
    if yolo.is_yolo_data_file(path):
        parsed = yolo.read_data_file(path)
        raise DataError(f"{path} is a YOLO data file with the splits {', '.join(parsed.splits) or '(none)'}; "
                        f"pass one split's image folder, e.g. {next(iter(parsed.splits.values()), 'images/train')}")
    if os.path.isfile(path) and path.endswith(".txt"):
        if masks:
            raise DataError(f"{path} is a YOLO image list, which the kit reads without instance masks")
        return read_yolo(path, label_map, full_check)
    if os.path.isfile(path):
        return read_coco(path, images_dir or find_coco_images_dir(path), label_map, full_check, masks)
    if not os.path.isdir(path):
        raise DataError(f"dataset {path} does not exist")
    layout = detection_layout(path)
    if layout == "coco":
        return read_coco(os.path.join(path, "annotations.json"), images_dir or os.path.join(path, "images"),
                         label_map, full_check, masks)
    if layout == "voc":
        if masks:
            raise DataError(f"{path} is a Pascal VOC folder, which the kit reads without instance masks; "
                            f"instance segmentation needs COCO annotations with segmentations")
        return read_voc(path, label_map, full_check=full_check)
    if layout == "yolo":
        if masks:
            raise DataError(f"{path} is a YOLO split, which the kit reads without instance masks; instance "
                            f"segmentation needs COCO annotations with segmentations")
        return read_yolo(path, label_map, full_check)
    yolo_splits = yolo.splits_below(path)
    if yolo_splits:
        raise DataError(f"{path} is a YOLO dataset with the splits "
                        f"{', '.join(os.path.relpath(s, path) + '/' for s in yolo_splits)}; pass one of them, "
                        f"e.g. {yolo_splits[-1]}")
    splits = [name for name in sorted(os.listdir(path)) if detection_layout(os.path.join(path, name))]
    if splits:  # the folder above the datasets (train/, val/)
        raise DataError(f"{path} holds the datasets {', '.join(s + '/' for s in splits)}; pass one of them, "
                        f"e.g. {split_to_pass(path, splits)}")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.basename(os.path.abspath(path)) in DATASET_PARTS and detection_layout(parent):
        raise DataError(f"{path} is part of the dataset {parent}; pass that folder")
    if _holds_class_folders(path):
        raise DataError(f"{path} holds class folders (<class name>/<images>), which is classification data; "
                        f"a detector reads a COCO dataset (annotations.json + images/), a Pascal VOC folder "
                        f"(Annotations/ + JPEGImages/) or a YOLO split (images/ + labels/)")
    raise DataError(f"{path} is neither a COCO dataset (annotations.json + images/), a Pascal VOC "
                    f"folder (Annotations/ + JPEGImages/) nor a YOLO split (images/<split> + labels/<split>)")


def _holds_class_folders(path: str) -> bool:
    """Whether a sub-folder of ``path`` holds images (the layout of classification data)."""
    for entry in os.scandir(path):
        if entry.is_dir() and image_names(entry.path):
            return True
    return False
