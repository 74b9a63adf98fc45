"""The tf.data pipeline, anchor labelling, box mapping back to the original image, demo data."""
import dataclasses
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from mobile_spinenet.data.demo import make_split
from mobile_spinenet.data.glyphs import load_glyphs
from mobile_spinenet.data.labeler import BACKGROUND, IGNORE, label_anchors
from mobile_spinenet.data.pipeline import InputConfig, eval_dataset, resize_and_pad, train_dataset
from mobile_spinenet.data.readers import read_dataset
from mobile_spinenet.zoo import model_anchors


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_split(str(root / "train"), "train", 24, seed=3)
    make_split(str(root / "val"), "val", 8, seed=3)
    return root


def test_resize_and_pad_keeps_aspect_and_pads_with_zeros():
    image = np.full((100, 200, 3), 255, np.uint8)
    boxes = np.array([[10, 20, 50, 120]], np.float32)
    padded, scaled, undo = resize_and_pad(image, boxes, 128)
    assert padded.shape == (128, 128, 3)
    assert np.allclose(padded[:64], 1.0) and np.allclose(padded[64:], 0.0)  # image, then zero padding
    np.testing.assert_allclose(scaled.numpy(), boxes * 0.64, rtol=1e-6)
    assert float(undo[0]) == pytest.approx(0.64)


def test_labeling_thresholds_ignore_and_best_anchor():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 8.0], [0, 0, 10, 4.5], [50, 50, 60, 60], [0, 0, 2, 2]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [52, 52, 53, 53]], np.float32)
    classes, codes = label_anchors(anchors, boxes, [4, 2])
    classes, codes = classes.numpy(), codes.numpy()
    assert classes[0] == 4 and np.allclose(codes[0], 0, atol=1e-6)  # exact match, zero code
    assert classes[1] == 4  # IoU 0.8
    assert classes[2] == IGNORE  # IoU 0.45: between 0.4 and 0.5
    assert classes[3] == 2  # IoU 0.01, but the best anchor of the small box
    assert classes[4] == BACKGROUND
    none_classes, none_codes = label_anchors(anchors, np.zeros((0, 4), np.float32), np.zeros((0,), np.int32))
    assert (none_classes.numpy() == BACKGROUND).all() and not none_codes.numpy().any()


def test_train_batches_shapes_and_exact_restart(demo):
    dataset = read_dataset(str(demo / "train"))
    anchors = model_anchors("spinenet49xxs", 128)
    config = InputConfig(128, 4, (0.6, 1.4), True, seed=1)
    batches = list(train_dataset(dataset, anchors, config, epoch=2))
    assert len(batches) == 6
    images, targets = batches[0]
    assert images.shape == (4, 128, 128, 3) and targets["classes"].shape == (4, len(anchors))
    assert targets["boxes"].shape == (4, len(anchors), 4)
    assert (targets["classes"].numpy() >= 0).any() and images.numpy().min() >= -1.0
    restarted = list(train_dataset(dataset, anchors, config, epoch=2, start_step=4))
    assert len(restarted) == 2
    np.testing.assert_array_equal(restarted[0][0].numpy(), batches[4][0].numpy())
    np.testing.assert_array_equal(restarted[1][1]["classes"].numpy(), batches[5][1]["classes"].numpy())
    other_epoch = list(train_dataset(dataset, anchors, config, epoch=3))[0][0].numpy()
    assert not np.array_equal(other_epoch, batches[0][0].numpy())


def test_grayscale_and_rgba_images_decode_to_rgb(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("L", (64, 64), 200).save(tmp_path / "images" / "g.png")
    Image.new("RGBA", (64, 64), (10, 20, 30, 5)).save(tmp_path / "images" / "a.png")
    (tmp_path / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "g.png", "width": 64, "height": 64},
                   {"id": 2, "file_name": "a.png", "width": 64, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 30, 30]}],
        "categories": [{"id": 1, "name": "x"}]}))
    dataset = read_dataset(str(tmp_path))
    images, _, _ = next(iter(eval_dataset(dataset, 128, batch_size=2)))
    assert images.shape == (2, 128, 128, 3)
    gray, rgba = images.numpy()
    assert np.allclose(gray[0, 0], 200 / 127.5 - 1)
    assert np.allclose(rgba[0, 0], np.array([10, 20, 30]) / 127.5 - 1)  # alpha dropped


def test_ground_truth_as_detections_scores_ap_one_through_the_box_mapping(demo):
    """An oracle predictor returns the true boxes in model pixels; mapping them back to the
    original images must give AP 1.0 (checks the undo of resize and padding)."""
    from mobile_spinenet.eval.detector_eval import evaluate_predictor

    dataset = read_dataset(str(demo / "val"))
    size = 256
    queue = list(dataset.records)

    def oracle(images):
        batch = [queue.pop(0) for _ in range(len(images))]
        d = max(len(r.boxes) for r in batch)
        boxes, scores, classes = np.zeros((len(batch), d, 4)), np.zeros((len(batch), d)), np.zeros((len(batch), d), int)
        for b, r in enumerate(batch):
            scale = size / max(r.width, r.height)
            boxes[b, :len(r.boxes)] = r.boxes * scale
            scores[b, :len(r.boxes)] = 0.9
            classes[b, :len(r.boxes)] = r.classes
        return boxes, scores, classes, np.array([len(r.boxes) for r in batch])

    metrics, detections = evaluate_predictor(oracle, dataset, size, batch_size=3)
    assert metrics["AP"] == pytest.approx(1.0) and len(detections) == sum(len(r.boxes) for r in dataset.records)


def test_demo_data_is_deterministic_and_spans_sizes(demo, tmp_path):
    again = tmp_path / "again"
    make_split(str(again), "train", 24, seed=3)
    first = json.loads((demo / "train" / "annotations.json").read_text())
    assert json.loads((again / "annotations.json").read_text()) == first
    image = "images/train_00005.jpg"
    assert (again / image).read_bytes() == (demo / "train" / image).read_bytes()
    areas = np.array([a["area"] for a in first["annotations"]])
    assert (areas < 32 ** 2).any() and ((areas >= 32 ** 2) & (areas <= 96 ** 2)).any() and (areas > 96 ** 2).any()
    assert len({a["category_id"] for a in first["annotations"]}) > 5
    other = tmp_path / "other"
    make_split(str(other), "train", 4, seed=4)
    assert json.loads((other / "annotations.json").read_text())["annotations"] != first["annotations"][:4]


def test_train_and_val_glyphs_are_disjoint():
    digest = lambda images: {hashlib.sha1(g.tobytes()).hexdigest() for g in images}  # noqa: E731
    train, _ = load_glyphs("train")
    val, _ = load_glyphs("val")
    assert len(train) >= 2000 and len(val) >= 1000
    assert not digest(train) & digest(val)


def _striped_coco(root, count=4, size=64):
    """``count`` black size x size images, image k with one white box of class k + 1 in its own
    band of rows (no two images' boxes overlap)."""
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for k in range(count):
        pixels = np.zeros((size, size, 3), np.uint8)
        y0, x0 = 4 + 14 * k, 10
        pixels[y0:y0 + 10, x0:x0 + 40] = 255
        Image.fromarray(pixels).save(root / "images" / f"{k}.png")
        images.append({"id": k + 1, "file_name": f"{k}.png", "height": size, "width": size})
        annotations.append({"id": k + 1, "image_id": k + 1, "category_id": k + 1, "bbox": [x0, y0, 40, 10],
                            "area": 400, "iscrowd": 0})
    categories = [{"id": k + 1, "name": f"c{k}"} for k in range(count)]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": categories}))
    return read_dataset(str(root))


def test_mosaic_tiles_four_images_with_their_boxes_and_restarts_exactly(tmp_path):
    from mobile_spinenet.data.pipeline import epoch_order, mosaic_partners

    dataset = _striped_coco(tmp_path / "stripes")
    # At 128 px a tile is 64 px: the 64 px images enter unscaled, so the expected mosaic is exact.
    config = InputConfig(128, 2, (1.0, 1.0), flip=False, seed=5, mosaic=1.0)
    offsets = ((0, 0), (0, 64), (64, 0), (64, 64))
    # One anchor per (image, tile): the image's box where that tile would put it.
    anchors = np.array([[4 + 14 * k + dy, 10 + dx, 14 + 14 * k + dy, 50 + dx]
                        for k in range(4) for dy, dx in offsets], np.float32)
    batches = list(train_dataset(dataset, anchors, config, epoch=1))
    order, partners = epoch_order(4, 5, 1), mosaic_partners(4, config, 1)
    pixels = [2.0 * (np.asarray(Image.open(tmp_path / "stripes" / "images" / f"{k}.png")) > 0) - 1.0 for k in range(4)]
    for position in range(4):
        images, targets = batches[position // 2]
        indices = [order[position], *partners[position]]
        expected = np.concatenate([np.concatenate([pixels[indices[0]], pixels[indices[1]]], 1),
                                   np.concatenate([pixels[indices[2]], pixels[indices[3]]], 1)], 0)
        np.testing.assert_allclose(images[position % 2].numpy(), expected, atol=1e-5)
        expected_classes = np.full(len(anchors), BACKGROUND)
        for tile, k in enumerate(indices):
            expected_classes[4 * k + tile] = dataset.label_map.index_of(k + 1)
        np.testing.assert_array_equal(targets["classes"][position % 2].numpy(), expected_classes)
    restarted = list(train_dataset(dataset, anchors, config, epoch=1, start_step=1))
    np.testing.assert_array_equal(restarted[0][0].numpy(), batches[1][0].numpy())
    # With no mosaic share the pipeline is the one without mosaics.
    plain = dataclasses.replace(config, mosaic=0.0)
    assert not np.array_equal(list(train_dataset(dataset, anchors, plain, epoch=1))[0][0].numpy(),
                              batches[0][0].numpy())
