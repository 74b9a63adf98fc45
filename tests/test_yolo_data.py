"""YOLO-layout datasets (images/ + labels/ + data.yaml): read with the readers' checks, converted
to COCO and back without changing a box, and trained on exactly as their COCO form."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from mobile_spinenet.cli import main
from mobile_spinenet.data.convert import convert
from mobile_spinenet.data.demo import make_split
from mobile_spinenet.data.readers import read_dataset, split_folders
from mobile_spinenet.data.records import DataError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo-demo")
    make_split(str(root / "coco" / "train"), "train", 12, seed=21)
    make_split(str(root / "coco" / "val"), "val", 4, seed=22)
    return root


def _same_records(a, b):
    assert len(a) == len(b)
    for x, y in zip(a.records, b.records):
        assert (x.width, x.height) == (y.width, y.height)
        assert open(x.path, "rb").read() == open(y.path, "rb").read()
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.classes, y.classes)


def test_coco_to_yolo_and_back_keeps_every_box_and_class_name(demo):
    convert(str(demo / "coco"), "yolo", str(demo / "yolo"), progress=lambda line: None)
    data_file = demo / "yolo" / "data.yaml"
    assert sorted(os.listdir(demo / "yolo" / "images")) == ["train", "val"]
    coco_train = read_dataset(str(demo / "coco" / "train"))
    yolo_train = read_dataset(str(demo / "yolo" / "images" / "train"))
    assert yolo_train.label_map.names == coco_train.label_map.names
    _same_records(coco_train, yolo_train)  # the float32 boxes the kit trains on, bit for bit
    train, val = split_folders(str(data_file), None)  # what compare / search / seeds take
    _same_records(read_dataset(val), read_dataset(str(demo / "coco" / "val")))
    convert(str(data_file), "coco", str(demo / "back"), progress=lambda line: None)
    back = read_dataset(str(demo / "back" / "train"))
    _same_records(coco_train, back)
    assert back.label_map.names == coco_train.label_map.names
    # and the YOLO text is what Ultralytics reads: class cx cy w h, normalised
    first = sorted(os.listdir(demo / "yolo" / "labels" / "train"))[0]
    fields = (demo / "yolo" / "labels" / "train" / first).read_text().split("\n")[0].split()
    assert len(fields) == 5 and fields[0].isdigit() and all(0 <= float(v) <= 1 for v in fields[1:])


def test_training_on_the_yolo_form_sees_the_batches_of_the_coco_form(demo):
    """Same records in the same order: the pipeline gives the same batches, so every step is the same."""
    from mobile_spinenet.data.pipeline import InputConfig, train_dataset

    if not (demo / "yolo").exists():
        convert(str(demo / "coco"), "yolo", str(demo / "yolo"), progress=lambda line: None)
    anchors = np.asarray([[y, x, y + 32, x + 32] for y in range(0, 128, 16) for x in range(0, 128, 16)], np.float32)
    config = InputConfig(image_size=128, batch_size=4, jitter=(0.8, 1.2), seed=3)
    coco = train_dataset(read_dataset(str(demo / "coco" / "train")), anchors, config, epoch=1)
    yolo = train_dataset(read_dataset(str(demo / "yolo" / "images" / "train")), anchors, config, epoch=1)
    batches = 0
    for (images_a, targets_a), (images_b, targets_b) in zip(coco, yolo):
        np.testing.assert_array_equal(images_a.numpy(), images_b.numpy())
        for key in targets_a:
            np.testing.assert_array_equal(targets_a[key].numpy(), targets_b[key].numpy())
        batches += 1
    assert batches == 3


def _yolo_split(tmp_path, labels: dict, names=("cat", "dog"), size=(64, 48)):
    root = tmp_path / "ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for stem, text in labels.items():
        if not stem.startswith("orphan"):
            Image.new("RGB", size, (90, 120, 30)).save(root / "images" / "train" / f"{stem}.jpg")
        if text is not None:
            (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [%s]\n" % ", ".join(names))
    return root


def test_each_bad_label_is_skipped_and_counted_by_name(tmp_path, caplog):
    root = _yolo_split(tmp_path, {
        "good": "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.2 0.2\n",
        "bad_class": "2 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n",
        "outside": "0 0.9 0.5 0.4 0.2\n",
        "words": "cat 0.5 0.5 0.2 0.2\n",
        "fields": "0 0.5 0.5 0.2\n",
        "flat": "1 0.5 0.5 0.0 0.3\n",
        "segment": "1 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n",
        "no_labels": None,
        "orphan": "0 0.5 0.5 0.2 0.2\n",
    })
    dataset = read_dataset(str(root / "images" / "train"))
    counts = dataset.issues.counts
    assert counts["bad class index"] == 1 and counts["coordinates outside 0..1"] == 1
    assert counts["bad label line"] == 2 and counts["bad box"] == 1
    assert counts["no label file"] == 1 and counts["label without image"] == 1
    by_name = {os.path.basename(r.path): r for r in dataset.records}
    assert len(by_name["no_labels.jpg"].boxes) == 0  # a missing label file: an image without objects
    assert len(by_name["bad_class.jpg"].boxes) == 1
    np.testing.assert_allclose(by_name["good.jpg"].boxes[0], [12, 16, 36, 48])  # ymin xmin ymax xmax in pixels
    np.testing.assert_allclose(by_name["segment.jpg"].boxes[0], [0.2 * 48, 0.1 * 64, 0.6 * 48, 0.5 * 64],
                               rtol=1e-6)  # a polygon line: its box
    assert dataset.label_map.names == ["cat", "dog"] and dataset.label_map.category_ids == [1, 2]
    assert "outside.txt line 1" in caplog.text


@pytest.mark.parametrize("yaml_text, message", [
    ("train: images/train\n", "needs `names:`"),
    ("train: images/train\nnames: {0: a, 2: b}\n", "every index 0..1"),
    ("train: images/train\nnc: 3\nnames: [a, b]\n", "nc is 3 but names lists 2 classes"),
    ("train: [images/train, images/more]\nnames: [a]\n", "field train must be one image folder"),
    ("train: images/train\nnames: [a\n", "is not valid YAML"),
])
def test_a_bad_data_yaml_is_one_line_naming_the_file_and_field(tmp_path, capsys, yaml_text, message):
    root = _yolo_split(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    (root / "data.yaml").write_text(yaml_text)
    assert main(["data", "check", str(root / "images" / "train")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(root / "data.yaml") in err and "Traceback" not in err


def test_what_a_yolo_path_is_and_is_not(tmp_path, capsys):
    root = _yolo_split(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    with pytest.raises(DataError, match="is a YOLO data file with the splits train; pass one split's image folder"):
        read_dataset(str(root / "data.yaml"))
    with pytest.raises(DataError, match="is a YOLO dataset with the splits images/train/; pass one of them"):
        read_dataset(str(root))
    (root / "data.yaml").unlink()
    with pytest.raises(DataError, match="a YOLO split without class names: put a data.yaml"):
        read_dataset(str(root / "images" / "train"))
    (root / "classes.txt").write_text("cat\ndog\n")  # LabelImg's and Darknet's names file
    assert read_dataset(str(root / "images" / "train")).label_map.names == ["cat", "dog"]
    assert main(["data", "check", str(root / "images" / "train")]) == 0
    assert "1 usable images, 1 boxes, 2 classes" in capsys.readouterr().out


def test_convert_never_writes_over_a_split_nor_mixes_class_lists(demo, tmp_path, capsys):
    out = tmp_path / "yolo"
    assert main(["data", "convert", str(demo / "coco" / "train"), "--to", "yolo", "--out", str(out)]) == 0
    assert "12 images" in capsys.readouterr().out
    before = sorted(os.listdir(out / "labels" / "train"))
    assert main(["data", "convert", str(demo / "coco" / "val"), "--to", "yolo", "--out", str(out),
                 "--split", "train"]) == 2
    assert "exists; data convert writes a new split and never over one" in capsys.readouterr().err
    assert sorted(os.listdir(out / "labels" / "train")) == before
    other = _yolo_split(tmp_path / "other", {"a": "0 0.5 0.5 0.2 0.2\n"}, names=("x", "y"))
    assert main(["data", "convert", str(other / "images" / "train"), "--to", "yolo", "--out", str(out),
                 "--split", "val"]) == 2
    assert "names the classes" in capsys.readouterr().err
    assert not (out / "images" / "val").exists() and not any(n.startswith(".") for n in os.listdir(out / "images"))
    data = json.loads(json.dumps(__import__("yaml").safe_load((out / "data.yaml").read_text())))
    assert data["train"] == "images/train" and "val" not in data
