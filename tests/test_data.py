"""Readers, bad-input rules, the input pipeline, anchor labelling and the demo data."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from mobile_spinenet.data.records import DataError, LabelMap
from mobile_spinenet.data.readers import read_coco, read_dataset, read_voc


def _image(path, size=(100, 80), mode="RGB", fmt=None):
    colour = {"RGB": (200, 30, 30), "L": 128, "RGBA": (0, 200, 0, 128), "CMYK": (0, 0, 255, 0)}[mode]
    Image.new(mode, size, colour).save(path, format=fmt)


@pytest.fixture
def messy_coco(tmp_path):
    """A COCO dataset with one of every kind of bad input."""
    images = tmp_path / "images"
    images.mkdir()
    _image(images / "good.jpg")
    _image(images / "gray.png", mode="L")
    _image(images / "rgba.png", mode="RGBA")
    _image(images / "empty.jpg")
    _image(images / "wrong_size.jpg", size=(60, 50))
    (images / "corrupt.jpg").write_bytes(b"this is not an image")
    _image(images / "truncated.jpg", size=(300, 300))
    data = (images / "truncated.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(data[: len(data) // 3])
    entries = [("good.jpg", 100, 80), ("gray.png", 100, 80), ("rgba.png", 100, 80), ("empty.jpg", 100, 80),
               ("wrong_size.jpg", 100, 80), ("corrupt.jpg", 100, 80), ("truncated.jpg", 300, 300),
               ("missing.jpg", 100, 80)]
    coco = {"images": [{"id": i + 1, "file_name": f, "width": w, "height": h} for i, (f, w, h) in enumerate(entries)],
            "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
            "annotations": [
                {"id": 101, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 20]},      # fine
                {"id": 102, "image_id": 1, "category_id": 7, "bbox": [80, 60, 40, 40]},      # clipped
                {"id": 103, "image_id": 1, "category_id": 3, "bbox": [10, 10, 0, 20]},       # zero width
                {"id": 104, "image_id": 1, "category_id": 3, "bbox": [10, 10, -5, 20]},      # negative
                {"id": 105, "image_id": 1, "category_id": 3, "bbox": [150, 10, 20, 20]},     # outside
                {"id": 106, "image_id": 1, "category_id": 99, "bbox": [10, 10, 20, 20]},     # unknown category
                {"id": 107, "image_id": 42, "category_id": 3, "bbox": [10, 10, 20, 20]},     # unknown image
                {"id": 108, "image_id": 1, "category_id": 3, "bbox": [0, 0, 50, 50], "iscrowd": 1},
                {"id": 109, "image_id": 2, "category_id": 7, "bbox": [5, 5, 20, 20]},
                {"id": 110, "image_id": 3, "category_id": 3, "bbox": [5, 5, 20, 20]},
                {"id": 111, "image_id": 5, "category_id": 3, "bbox": [5, 5, 20, 20]},
                {"id": 112, "image_id": 1, "category_id": 3, "bbox": "oops"},               # malformed
            ]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    return tmp_path


def test_every_bad_input_case_is_counted_and_named(messy_coco, caplog):
    dataset = read_dataset(str(messy_coco))
    counts = dataset.issues.counts
    assert counts["missing image"] == 1 and counts["corrupt image"] == 2  # garbage bytes and truncated JPEG
    assert counts["converted to RGB"] == 2  # grayscale and RGBA
    assert counts["size mismatch"] == 1
    assert counts["bad box"] == 3  # zero width, negative width, not a list
    assert counts["box outside image"] == 1 and counts["box clipped"] == 1
    assert counts["unknown category"] == 1 and counts["unknown image id"] == 1
    assert counts["crowd box"] == 1 and counts["no boxes"] == 1
    text = "\n".join(dataset.issues.messages)
    for name in ("missing.jpg", "corrupt.jpg", "truncated.jpg", "annotation 103", "annotation 106",
                 "annotation 107", "annotation 112", "image id 5"):
        assert name in text
    assert "corrupt image" in caplog.text  # logged, not only stored
    by_file = {os.path.basename(r.path): r for r in dataset.records}
    assert sorted(by_file) == ["empty.jpg", "good.jpg", "gray.png", "rgba.png", "wrong_size.jpg"]
    good = by_file["good.jpg"]
    np.testing.assert_allclose(good.boxes, [[10, 10, 30, 40], [60, 80, 80, 100]])  # second one clipped
    assert good.classes.tolist() == [0, 1]  # category ids 3, 7 -> contiguous 0, 1
    assert (by_file["wrong_size.jpg"].width, by_file["wrong_size.jpg"].height) == (60, 50)
    assert len(by_file["empty.jpg"].boxes) == 0


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('{"images": [}')
    with pytest.raises(DataError, match=r"annotations.json is not valid JSON: .* line 1 column 13"):
        read_coco(str(path), str(tmp_path))
    path.write_text('{"images": [], "annotations": []}')
    with pytest.raises(DataError, match="'categories' is missing"):
        read_coco(str(path), str(tmp_path))


def test_dataset_without_usable_images_is_an_error(tmp_path):
    (tmp_path / "annotations.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "nope.jpg"}], "annotations": [], "categories": [{"id": 1}]}))
    with pytest.raises(DataError, match="no usable images"):
        read_dataset(str(tmp_path))
    (tmp_path / "plain_folder").mkdir()
    with pytest.raises(DataError, match="neither a COCO dataset"):
        read_dataset(str(tmp_path / "plain_folder"))


def test_label_map_round_trip_and_val_uses_train_map(messy_coco, tmp_path):
    train = read_dataset(str(messy_coco))
    train.label_map.save(str(tmp_path / "label_map.json"))
    loaded = LabelMap.load(str(tmp_path / "label_map.json"))
    assert loaded == train.label_map and loaded.category_ids == [3, 7] and loaded.names == ["cat", "dog"]
    flipped = LabelMap([7, 3], ["dog", "cat"])
    val = read_dataset(str(messy_coco), label_map=flipped)
    good = [r for r in val.records if r.path.endswith("good.jpg")][0]
    assert good.classes.tolist() == [1, 0]


def test_relabelling_read_records_equals_reading_with_the_label_map(messy_coco):
    train = read_dataset(str(messy_coco))
    for label_map in (LabelMap([7, 3], ["dog", "cat"]), LabelMap([7, -2], ["dog", "unmatched"])):
        read = read_dataset(str(messy_coco), label_map=label_map)
        relabelled = train.relabelled(label_map)
        assert relabelled.label_map is label_map and train.label_map.category_ids == [3, 7]  # original kept
        assert [r.image_id for r in relabelled.records] == [r.image_id for r in read.records]
        for ours, theirs in zip(relabelled.records, read.records):
            assert ours.classes.tolist() == theirs.classes.tolist()
            np.testing.assert_array_equal(ours.boxes, theirs.boxes)
    dropped = train.relabelled(LabelMap([7], ["dog"]))
    assert dropped.issues.counts["unknown category"] > train.issues.counts["unknown category"]
    assert sum(len(r.classes) for r in dropped.records) < sum(len(r.classes) for r in train.records)


def test_voc_reader(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    _image(tmp_path / "JPEGImages" / "a.jpg", size=(120, 90))
    xml = """<annotation><filename>a.jpg</filename>
      <object><name>horse</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>
      <object><name>person</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
      <object><name>horse</name><bndbox><xmin>100</xmin><ymin>50</ymin><xmax>200</xmax><ymax>80</ymax></bndbox></object>
    </annotation>"""
    (tmp_path / "Annotations" / "a.xml").write_text(xml)
    (tmp_path / "Annotations" / "b.xml").write_text("<annotation><object>")  # malformed
    dataset = read_dataset(str(tmp_path))
    assert dataset.label_map.names == ["horse", "person"]
    assert dataset.issues.counts["bad annotation file"] == 1 and "b.xml" in "".join(dataset.issues.messages)
    assert dataset.issues.counts["crowd box"] == 1 and dataset.issues.counts["box clipped"] == 1
    np.testing.assert_allclose(dataset.records[0].boxes, [[20, 10, 60, 50], [49, 99, 80, 120]])
    ground_truth = dataset.coco_ground_truth()
    assert len(ground_truth["annotations"]) == 2 and ground_truth["categories"][0]["name"] == "horse"
