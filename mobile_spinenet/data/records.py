"""What the readers produce: image records with boxes in pixels, the category -> class-index
map that is saved with every model, and the report of bad input that was skipped or fixed."""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

log = logging.getLogger("mobile_spinenet.data")


class DataError(ValueError):
    """Input that cannot be used at all (no records, unreadable annotation file, ...)."""


@dataclass
class ImageRecord:
    """One image: ``boxes`` ``[M, 4]`` (ymin, xmin, ymax, xmax) in pixels of the stored image,
    ``classes`` ``[M]`` contiguous class indices; ``segmentations`` (read for instance
    segmentation only) one checked COCO segmentation per box."""

    image_id: int
    path: str
    width: int
    height: int
    boxes: np.ndarray
    classes: np.ndarray
    segmentations: Optional[list] = None


@dataclass
class LabelMap:
    """Dataset category ids <-> contiguous class indices 0..K-1 (in ascending id order)."""

    category_ids: list
    names: list

    @classmethod
    def from_categories(cls, categories: Sequence[dict]) -> "LabelMap":
        ordered = sorted(categories, key=lambda c: c["id"])
        return cls([int(c["id"]) for c in ordered], [str(c.get("name", c["id"])) for c in ordered])

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def index_of(self, category_id) -> Optional[int]:
        """The class index of a category id; None for an unknown id or one that is no whole number
        (``2.9`` is not category 2, ``True`` not category 1)."""
        if isinstance(category_id, bool) or not isinstance(category_id, (int, float, np.integer, np.floating)):
            return None
        if isinstance(category_id, (float, np.floating)) and not float(category_id).is_integer():
            return None
        try:
            return self.category_ids.index(int(category_id))
        except ValueError:
            return None

    def to_dict(self) -> dict:
        return {"classes": [{"index": i, "category_id": c, "name": n}
                            for i, (c, n) in enumerate(zip(self.category_ids, self.names))]}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelMap":
        rows = sorted(data["classes"], key=lambda r: r["index"])
        return cls([int(r["category_id"]) for r in rows], [str(r["name"]) for r in rows])

    def save(self, path: str) -> None:
        from mobile_spinenet.io_utils import write_json_atomically
        write_json_atomically(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> "LabelMap":
        with open(path) as f:
            return cls.from_dict(json.load(f))


@dataclass
class DataIssues:
    """Bad input met while reading: a count per kind and a message per case (the first few of
    each kind are logged; all are kept for ``data_issues.txt``)."""

    source: str = ""
    counts: Counter = field(default_factory=Counter)
    messages: list = field(default_factory=list)
    log_per_kind: int = 10

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self.messages.append(f"{kind}: {message}")
        if self.counts[kind] <= self.log_per_kind:
            log.warning("%s: %s", kind, message)
        elif self.counts[kind] == self.log_per_kind + 1:
            log.warning("%s: more cases follow; all are counted in the summary", kind)

    def summary(self) -> str:
        if not self.counts:
            return f"{self.source}: no input problems"
        parts = ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts.items()))
        return f"{self.source}: {parts}"


@dataclass
class DetectionDataset:
    """Records read from one dataset, with its label map and the issues met on the way."""

    records: list
    label_map: LabelMap
    issues: DataIssues
    annotation_file: Optional[str] = None  # COCO JSON of these records (for pycocotools)

    def __len__(self) -> int:
        return len(self.records)

    def relabelled(self, label_map: LabelMap) -> "DetectionDataset":
        """These records with class indices of ``label_map`` (matched by category id), without
        reading the dataset again; boxes of a category it lacks are dropped and reported, as a
        reader given ``label_map`` drops them."""
        issues = DataIssues(self.issues.source, Counter(self.issues.counts), list(self.issues.messages),
                            self.issues.log_per_kind)
        new_index = {c: label_map.index_of(c) for c in self.label_map.category_ids}
        records = []
        for r in self.records:
            indices = [new_index[self.label_map.category_ids[c]] for c in r.classes.tolist()]
            for c in {self.label_map.category_ids[c] for c, i in zip(r.classes.tolist(), indices) if i is None}:
                issues.add("unknown category", f"image id {r.image_id} has boxes of category id {c}, "
                           f"not in the label map; skipped")
            keep = np.asarray([i is not None for i in indices], bool).reshape(-1)
            segmentations = None if r.segmentations is None else [m for m, k in zip(r.segmentations, keep) if k]
            records.append(ImageRecord(r.image_id, r.path, r.width, r.height, r.boxes[keep],
                                       np.asarray([i for i in indices if i is not None], np.int32), segmentations))
        return DetectionDataset(records, label_map, issues, self.annotation_file)

    def coco_ground_truth(self) -> dict:
        """COCO ground truth of these records for pycocotools: the original annotation file
        (so crowd regions count as ignored) restricted to the records' images, or, for VOC,
        one built from the records."""
        ids = {r.image_id for r in self.records}
        if self.annotation_file:
            with open(self.annotation_file) as f:
                data = json.load(f)
            return {"images": [i for i in data["images"] if isinstance(i, dict) and i.get("id") in ids],
                    "annotations": [a for a in data["annotations"]
                                    if isinstance(a, dict) and a.get("image_id") in ids and "bbox" in a],
                    "categories": data["categories"]}
        images, annotations = [], []
        for r in self.records:
            images.append({"id": r.image_id, "width": r.width, "height": r.height, "file_name": r.path})
            for (y0, x0, y1, x1), c in zip(r.boxes.tolist(), r.classes.tolist()):
                annotations.append({"id": len(annotations) + 1, "image_id": r.image_id, "iscrowd": 0,
                                    "category_id": self.label_map.category_ids[c],
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        categories = [{"id": c, "name": n} for c, n in zip(self.label_map.category_ids, self.label_map.names)]
        return {"images": images, "annotations": annotations, "categories": categories}
