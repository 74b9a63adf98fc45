"""``mobile-spinenet data convert``: a detection dataset the kit reads, written as COCO
(``annotations.json`` + ``images/``) or as a YOLO split (``images/<split>``, ``labels/<split>``
and the dataset's ``data.yaml``), so users move between toolkits.

What carries over: every usable image (the file itself, hard-linked where the file system allows,
else copied) and every box the kit trains on, with its class name. What does not: crowd regions and
VOC's difficult objects (the readers leave them out of training; YOLO has no such flag), category
ids (YOLO numbers classes 0..K-1 in the label map's order, and reading YOLO gives ids 1..K), and
masks. Coordinates are written as the shortest text that reads back as the same double, so that
COCO -> YOLO -> COCO gives the same float32 boxes the kit trains on (tests/test_yolo_data.py).

Nothing is written over: the output split must not exist yet; it is built in a temporary folder
beside it and renamed into place, and ``data.yaml`` is updated under a lock."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional

from mobile_spinenet.data.records import DataError, DetectionDataset
from mobile_spinenet.data.yolo import read_data_file

FORMATS = ("coco", "yolo")


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _file_names(dataset: DetectionDataset) -> list:
    """A unique file name per record: its own, prefixed with its image id where two collide."""
    names = [os.path.basename(r.path) for r in dataset.records]
    seen = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return [name if seen[name] == 1 else f"{r.image_id}_{name}" for name, r in zip(names, dataset.records)]


def _refuse_existing(path: str) -> None:
    if os.path.exists(path):
        raise DataError(f"{path} exists; data convert writes a new split and never over one (remove it or pick "
                        f"another --out / --split)")


def _publish(temp: str, final: str) -> None:
    _refuse_existing(final)
    os.rename(temp, final)


def write_coco(dataset: DetectionDataset, out: str) -> str:
    """``out/annotations.json`` + ``out/images/``; returns the JSON's path."""
    _refuse_existing(out)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    try:
        os.makedirs(os.path.join(temp, "images"))
        images, annotations = [], []
        for record, name in zip(dataset.records, _file_names(dataset)):
            _link_or_copy(record.path, os.path.join(temp, "images", name))
            images.append({"id": record.image_id, "file_name": name, "width": record.width, "height": record.height})
            for (y0, x0, y1, x1), c in zip(record.boxes.tolist(), record.classes.tolist()):
                w, h = x1 - x0, y1 - y0
                annotations.append({"id": len(annotations) + 1, "image_id": record.image_id, "iscrowd": 0,
                                    "category_id": dataset.label_map.category_ids[c],
                                    "bbox": [float(v) for v in (x0, y0, w, h)], "area": float(w * h)})
        categories = [{"id": c, "name": n} for c, n in zip(dataset.label_map.category_ids, dataset.label_map.names)]
        with open(os.path.join(temp, "annotations.json"), "w") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
        _publish(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return os.path.join(out, "annotations.json")


def _yolo_line(box, c: int, width: int, height: int) -> str:
    y0, x0, y1, x1 = box
    values = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
    return " ".join([str(c)] + [repr(float(v)) for v in values])


def write_yolo(dataset: DetectionDataset, root: str, split: str) -> str:
    """``root/images/<split>/``, ``root/labels/<split>/`` and ``root/data.yaml`` (created, or given
    this split when its class names are the same); returns the data.yaml path."""
    from mobile_spinenet.io_utils import exclusively, write_atomically

    if not split or os.sep in split or split.startswith("."):
        raise DataError(f"--split must be a plain folder name such as train or val, got {split!r}")
    images_dir, labels_dir = os.path.join(root, "images", split), os.path.join(root, "labels", split)
    for path in (images_dir, labels_dir):
        _refuse_existing(path)
    data_file = os.path.join(root, "data.yaml")
    names = list(dataset.label_map.names)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    with exclusively(os.path.join(root, ".data.yaml.lock")):
        existing = read_data_file(data_file) if os.path.isfile(data_file) else None
        if existing is not None and existing.names != names:
            raise DataError(f"{data_file} names the classes {existing.names}; this dataset has {names}: convert it "
                            f"into another --out")
        temp_images = tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=os.path.join(root, "images"))
        temp_labels = tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=os.path.join(root, "labels"))
        try:
            for record, name in zip(dataset.records, _file_names(dataset)):
                _link_or_copy(record.path, os.path.join(temp_images, name))
                lines = [_yolo_line(box, c, record.width, record.height)
                         for box, c in zip(record.boxes.tolist(), record.classes.tolist())]
                with open(os.path.join(temp_labels, os.path.splitext(name)[0] + ".txt"), "w") as f:
                    f.write("".join(line + "\n" for line in lines))
            _publish(temp_labels, labels_dir)
            _publish(temp_images, images_dir)
        except BaseException:
            shutil.rmtree(temp_images, ignore_errors=True)
            shutil.rmtree(temp_labels, ignore_errors=True)
            raise
        splits = {name: os.path.relpath(path, root) for name, path in (existing.splits if existing else {}).items()}
        splits[split] = os.path.join("images", split)
        write_atomically(data_file, _data_yaml(names, splits))
    return data_file


def _data_yaml(names: list, splits: dict) -> str:
    import yaml

    body = {"path": ".", **{name: splits[name] for name in sorted(splits, key=_split_order)},
            "names": {index: name for index, name in enumerate(names)}}
    return "# written by mobile-spinenet data convert (YOLO layout)\n" + yaml.safe_dump(body, sort_keys=False)


def _split_order(name: str) -> tuple:
    order = ("train", "val", "test")
    return (order.index(name) if name in order else len(order), name)


def convert(source: str, to: str, out: str, split: Optional[str] = None, progress=print) -> list:
    """Convert ``source`` to ``to`` into ``out``; returns what was written. ``source`` is one split
    any reader takes (``split`` names it, default ``train``), or several: a folder of split folders
    (``data demo``'s train/ and val/), a YOLO data.yaml or a YOLO dataset folder (``split`` then
    picks one of them). COCO goes to ``out`` for one split and ``out/<split>`` for several; YOLO
    always to the dataset folder ``out`` (``images/<split>``, ``labels/<split>``, ``data.yaml``)."""
    from mobile_spinenet.data.readers import read_dataset

    if to not in FORMATS:
        raise DataError(f"--to must be one of {', '.join(FORMATS)}, got {to!r}")
    splits = source_splits(source)
    several = splits is not None
    if not several:
        splits = {split or "train": source}
    elif split is not None:
        if split not in splits:
            raise DataError(f"{source} has no split {split!r} (it has: {', '.join(splits)})")
        splits = {split: splits[split]}
    written, label_map = [], None
    for name, path in splits.items():
        dataset = read_dataset(path, label_map=label_map)
        label_map = dataset.label_map  # every split with the first one's classes
        if to == "coco":
            target = write_coco(dataset, os.path.join(out, name) if several else out)
        else:
            target = write_yolo(dataset, out, name)
        boxes = sum(len(r.boxes) for r in dataset.records)
        progress(f"{path} -> {target}: {len(dataset)} images, {boxes} boxes, {label_map.num_classes} classes")
        written.append(target)
    return written


def source_splits(source: str) -> Optional[dict]:
    """``{split: path}`` of a source with several splits, or None for a single split."""
    from mobile_spinenet.data import yolo
    from mobile_spinenet.data.readers import detection_layout, read_dataset, yolo_split

    if yolo.is_yolo_data_file(source):
        return {name: yolo_split(source, name) for name in read_data_file(source).splits}
    if not os.path.isdir(source) or detection_layout(source):
        return None
    below = yolo.splits_below(source)
    if below:
        return {os.path.basename(path): path for path in below}
    splits = {name: os.path.join(source, name) for name in sorted(os.listdir(source))
              if os.path.isdir(os.path.join(source, name)) and detection_layout(os.path.join(source, name))}
    if not splits:
        read_dataset(source)  # its one-line error says what the folder is not
    return splits
