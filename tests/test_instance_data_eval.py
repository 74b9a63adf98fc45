"""Instance masks through the kit (issue #16): the reader's bad-mask reports, masks that follow their
boxes through flip/jitter/crop, ground truth fed as predictions scoring box and mask AP 1.0, and a
tiny Mask R-CNN run through train, eval and predict as a user runs them."""
import json

import numpy as np
import pytest

from mobile_spinenet.data.masks import crop_to_box, decode_segmentation


def _write_coco(root, images, annotations, categories=({"id": 1, "name": "shape"},)):
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": list(categories)}))
    return str(root / "annotations.json")


def _polygon_image(root, width=200, height=160):
    """One black PNG with white asymmetric shapes (right triangles and an L), its COCO file
    giving each shape's polygon as its mask: the image *is* the union of the masks."""
    from PIL import Image, ImageDraw

    polygons = [[20, 20, 90, 20, 20, 110],                  # right angle top-left
                [120, 30, 190, 30, 190, 70],                # right angle top-right, thin
                [110, 90, 130, 90, 130, 140, 180, 140, 180, 150, 110, 150]]  # an L
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    annotations = []
    for k, polygon in enumerate(polygons):
        draw.polygon(polygon, fill=(255, 255, 255))
        xs, ys = polygon[0::2], polygon[1::2]
        annotations.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [polygon],
                            "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                            "area": (max(xs) - min(xs)) * (max(ys) - min(ys))})
    (root / "images").mkdir(parents=True)
    image.save(root / "images" / "shapes.png")
    return _write_coco(root, [{"id": 1, "file_name": "shapes.png", "width": width, "height": height}], annotations)


def test_the_reader_reports_and_skips_objects_with_bad_masks(tmp_path, caplog):
    from PIL import Image

    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.data.records import DataError

    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "a.png")
    box = {"image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 20, 10], "area": 200}
    annotations = [
        {**box, "id": 1, "segmentation": [[5, 5, 25, 5, 25, 15, 5, 15]]},                 # good
        {**box, "id": 2, "segmentation": [[]]},                                          # empty polygon
        {**box, "id": 3, "segmentation": [[100, 100, 140, 100, 140, 120]]},               # outside the image
        {**box, "id": 4, "segmentation": {"size": [30, 41], "counts": [1200]}},           # RLE of another size
        {**box, "id": 5, "segmentation": {"size": [30, 40], "counts": [10, 5]}},          # counts != 30 * 40
        {**box, "id": 6},                                                                 # no segmentation
    ]
    path = _write_coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], annotations)
    dataset = read_dataset(path, masks=True)
    assert len(dataset.records[0].boxes) == 1 and len(dataset.records[0].segmentations) == 1
    assert dataset.issues.counts["bad mask"] == 5
    messages = "\n".join(dataset.issues.messages)
    for reason in ("annotation 2 ", "needs at least 3", "annotation 3 ", "covers no pixel",
                   "RLE size [30, 41] is not the image's [30, 40]", "add up to 15 pixels", "annotation 6 "):
        assert reason in messages
    # read without masks, the same file trains boxes as before: nothing is reported
    assert len(read_dataset(path).records[0].boxes) == 6
    # a detection-only file (no segmentation anywhere) is refused for instance segmentation, saying why
    for annotation in annotations:
        annotation.pop("segmentation", None)
    path = _write_coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], annotations)
    with pytest.raises(DataError, match="all 6 objects were skipped for their masks.*needs a usable `segmentation`"):
        read_dataset(path, masks=True)


def test_masks_follow_their_boxes_through_flip_jitter_and_crop(tmp_path):
    from mobile_spinenet.data.pipeline import InputConfig, instance_train_dataset
    from mobile_spinenet.data.readers import read_dataset

    dataset = read_dataset(_polygon_image(tmp_path), masks=True)
    checked, flipped_seen = 0, set()
    for seed in range(6):
        config = InputConfig(image_size=128, batch_size=1, jitter=(0.7, 1.5), flip=True, seed=seed)
        image, targets = next(iter(instance_train_dataset(dataset, config, epoch=0, mask_size=56)))
        silhouette = (image.numpy()[0, ..., 0] > 0).astype(np.float32)  # the image is the masks
        for box, cls, mask in zip(targets["gt_boxes"].numpy()[0], targets["gt_classes"].numpy()[0],
                                  targets["gt_masks"].numpy()[0]):
            if cls < 0:
                continue
            want = crop_to_box(silhouette, box, 56) > 0.5
            agreement = np.mean((mask > 0.5) == want)
            assert agreement > 0.93, (seed, box, agreement)
            # the top-left triangle's right angle says which way the image went
            if abs((box[2] - box[0]) - (box[3] - box[1]) * 90 / 70) < 8:
                flipped_seen.add(bool(mask[5, -5] > 0.5))
            checked += 1
    assert checked >= 12 and flipped_seen == {False, True}


def test_ground_truth_fed_as_predictions_scores_box_and_mask_ap_1(tmp_path):
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.instance_eval import evaluate_instances

    make_split(str(tmp_path / "val"), "val", 6, seed=5)
    dataset = read_dataset(str(tmp_path / "val"), masks=True)
    # two of this set's glyphs are hidden entirely by later ones: the reader reports their empty masks
    assert dataset.issues.counts["bad mask"] == 2
    size = 256

    def ground_truth(mask_size):
        queue = list(dataset.records)

        def predict(images):  # the ground truth in model pixels, each mask cropped to its box
            out = {"boxes": [], "scores": [], "classes": [], "count": [], "masks": []}
            for _ in range(len(images)):
                record = queue.pop(0)
                scale = size / max(record.width, record.height)  # letterbox
                pad = 20 - len(record.boxes)
                masks = [crop_to_box(decode_segmentation(s, record.height, record.width), b, mask_size)
                         for s, b in zip(record.segmentations, record.boxes)]
                out["boxes"].append(np.pad(record.boxes * scale, [[0, pad], [0, 0]]))
                out["scores"].append(np.pad(np.ones(len(record.boxes)), [0, pad]))
                out["classes"].append(np.pad(record.classes, [0, pad]))
                out["count"].append(len(record.boxes))
                out["masks"].append(np.pad(np.asarray(masks), [[0, pad], [0, 0], [0, 0]]))
            return {k: np.asarray(v) for k, v in out.items()}
        return predict

    # at 112 x 112 a pasted mask is its object's to within a few pixels: every IoU threshold matches
    metrics, results = evaluate_instances(ground_truth(112), dataset, size, batch_size=4)
    assert sum(len(r.boxes) for r in dataset.records) == len(results) >= 6
    # box AP counts the hidden glyphs (no prediction here), so it is not 1; mask AP ignores them
    assert metrics["segm"]["AP"] == pytest.approx(1.0, abs=1e-3)
    assert 0.8 < metrics["bbox"]["AP"] < 1.0
    # at the head's 28 x 28 the smallest glyphs lose their detail above IoU 0.75
    metrics, _ = evaluate_instances(ground_truth(28), dataset, size, batch_size=4)
    assert metrics["segm"]["AP50"] == metrics["segm"]["AP75"] == pytest.approx(1.0, abs=1e-3)
    assert 0.85 < metrics["segm"]["AP"] < 1.0

    # masks that are not the objects' (a diagonal line in every box) keep the box AP and lose the mask AP
    def wrong_masks(images, predict=ground_truth(28)):
        out = predict(images)
        return {**out, "masks": np.broadcast_to(np.eye(28), out["masks"].shape).copy()}

    wrong, _ = evaluate_instances(wrong_masks, dataset, size, batch_size=4)
    assert wrong["bbox"]["AP"] == metrics["bbox"]["AP"] and wrong["segm"]["AP"] < 0.2


def test_the_ground_truth_as_coco_results_scores_box_and_mask_ap_1(tmp_path):
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.coco_metrics import evaluate
    from mobile_spinenet.eval.instance_eval import without_empty_masks

    make_split(str(tmp_path / "val"), "val", 6, seed=5)
    truth = read_dataset(str(tmp_path / "val")).coco_ground_truth()
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
                "segmentation": a["segmentation"]} for a in truth["annotations"]]
    ids = [image["id"] for image in truth["images"]]
    assert evaluate(truth, results, ids)["AP"] == pytest.approx(1.0, abs=1e-3)
    masked = without_empty_masks(truth)
    hidden = [a["iscrowd"] for a in masked["annotations"]]
    assert sum(hidden) == 2  # the two hidden glyphs, ignored by mask AP only
    visible = [r for r, crowd in zip(results, hidden) if not crowd]
    assert evaluate(masked, visible, ids, "segm")["AP"] == pytest.approx(1.0, abs=1e-3)
    assert evaluate(truth, visible, ids)["AP"] < 0.95  # box AP counts the hidden glyphs as missed


@pytest.fixture(scope="module")
def tiny_instance_run(tmp_path_factory):
    from mobile_spinenet.cli import main
    from mobile_spinenet.data.demo import make_split

    root = tmp_path_factory.mktemp("instance_run")
    make_split(str(root / "train"), "train", 16, seed=2)
    make_split(str(root / "val"), "val", 4, seed=2)
    run = root / "run"
    assert main(["train", "--task", "instance-segmentation", "--model", "spinenet49xxs", "--image-size", "128",
                 "--data", str(root / "train"), "--val", str(root / "val"), "--out", str(run), "--epochs", "1",
                 "--batch", "8", "--no-progress"]) == 0
    return root


@pytest.mark.slow  # ~80 s (a Mask R-CNN run through the CLI); the parts are tested fast above and in test_mask_rcnn
def test_a_mask_rcnn_run_is_evaluated_for_boxes_and_masks_and_predict_draws_masks(tiny_instance_run, capsys):
    from mobile_spinenet.cli import main

    root = tiny_instance_run
    assert "val_mask_AP" in open(root / "run" / "metrics.csv").readline()
    capsys.readouterr()
    assert main(["eval", str(root / "run"), "--data", str(root / "val"), "--json", str(root / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "box (bbox):" in printed and "mask (segm):" in printed
    results = json.load(open(root / "r.json"))
    assert results and all("segmentation" in r and "bbox" in r for r in results)
    assert main(["eval", str(root / "run"), "--data", str(root / "val"), "--image-size", "256"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a Mask R-CNN run" in err and len(err.splitlines()) == 1, err
    image = sorted((root / "val" / "images").iterdir())[0]
    assert main(["predict", str(root / "run"), str(image), "--out", str(root / "drawn"),
                 "--score-threshold", "0"]) == 0
    detections = json.load(open(root / "drawn" / "detections.json"))[0]["detections"]
    assert detections and all("mask_rle" in d for d in detections)
    assert (root / "drawn" / (image.stem + ".jpg")).is_file()


@pytest.mark.slow  # ~40 s more on the slow run above
def test_a_mask_rcnn_run_exports_a_checked_savedmodel_that_eval_scores(tiny_instance_run, capsys):
    from mobile_spinenet.backend import tf
    from mobile_spinenet.cli import main

    root = tiny_instance_run
    assert main(["export-savedmodel", str(root / "run"), "--out", str(root / "served"), "--verify-images", "4"]) == 0
    report = json.load(open(root / "served" / "mobile_spinenet.json"))
    assert report["task"] == "instance-segmentation" and report["verification"]["images"] == 4
    served = tf.saved_model.load(str(root / "served")).signatures["serving_default"]
    out = served(images=tf.zeros([2, 128, 128, 3]))
    assert out["masks"].shape[:2] == out["boxes"].shape[:2] == (2, 100) and out["masks"].shape[2:] == (28, 28)
    capsys.readouterr()
    assert main(["eval", str(root / "served"), "--data", str(root / "val")]) == 0
    assert "mask (segm):" in capsys.readouterr().out
    # TFLite has no builtin for the proposal NMS: export says so and names the SavedModel command
    assert main(["export", str(root / "run"), "--out", str(root / "m.tflite")]) != 0
    assert "export-savedmodel" in capsys.readouterr().err


def test_mask_rcnn_recipes_decay_with_a_cosine_unless_the_user_says_otherwise(tmp_path):
    from mobile_spinenet.training.config import load_config

    assert load_config("spinenet49").schedule == "step"  # RetinaNet: the paper's step schedule
    assert load_config("spinenet49", overrides={"task": "instance-segmentation"}).schedule == "cosine"
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("task: instance-segmentation\nschedule: step\n")
    assert load_config("spinenet49", str(recipe)).schedule == "step"
    recipe.write_text("task: instance-segmentation\n")
    assert load_config("spinenet49", str(recipe)).schedule == "cosine"


def test_init_gives_mask_rcnn_the_backbone_of_a_retinanet_run_and_leaves_its_heads_fresh():
    import os

    from mobile_spinenet.training.init_weights import initialise_from_run, leaf_layers
    from mobile_spinenet.training.runs import open_run
    from mobile_spinenet.zoo import build_model

    run_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "demo",
                           "spinenet49xxs")
    source = leaf_layers(open_run(run_dir).model())
    model = build_model("spinenet49xxs", task="instance-segmentation", image_size=128, num_classes=10)
    fresh = {name: [w.numpy().copy() for w in layer.weights] for name, layer in leaf_layers(model).items()}
    copied, total = initialise_from_run(model, run_dir)  # a 256 px run into a 128 px model: convs fit any size
    assert 0 < copied < total
    layers = leaf_layers(model)
    stem = next(name for name in layers if name in source and "stem" in name)
    for got, want in zip(layers[stem].weights, source[stem].weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for name in ("rpn_score", "box_head_fc", "mask_logits"):
        assert name not in source
        for got, before in zip(layers[name].weights, fresh[name]):
            np.testing.assert_array_equal(got.numpy(), before)
    with pytest.raises(ValueError, match="shares no layer"):
        initialise_from_run(build_model("mnv3_small_ssdlite", image_size=128, num_classes=10), run_dir)
