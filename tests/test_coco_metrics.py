import json

import numpy as np
import pytest

from mobile_spinenet.eval.coco_metrics import boxes_to_coco, evaluate, format_metrics


def ground_truth():
    images, annotations = [], []
    rng = np.random.default_rng(0)
    for image_id in range(1, 6):
        images.append({"id": image_id, "width": 640, "height": 480, "file_name": f"{image_id}.jpg"})
        for j in range(3):
            x, y = rng.uniform(0, 400), rng.uniform(0, 300)
            annotations.append({"id": image_id * 10 + j, "image_id": image_id, "category_id": 1 + j % 2,
                                "bbox": [x, y, 100.0, 100.0], "area": 10000.0, "iscrowd": 0})
    categories = [{"id": 1, "name": "shirt"}, {"id": 2, "name": "shoe"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def as_detections(gt, shift_x=0.0):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9,
             "bbox": [a["bbox"][0] + shift_x, *a["bbox"][1:]]} for a in gt["annotations"]]


def test_ground_truth_as_detections_scores_ap_1():
    gt = ground_truth()
    metrics = evaluate(gt, as_detections(gt))
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["per_class_AP"] == {"shirt": pytest.approx(1.0), "shoe": pytest.approx(1.0)}


def test_shifted_boxes_score_the_known_lower_ap():
    gt = ground_truth()
    # 100x100 boxes shifted 20 px: IoU = 80*100 / (120*100) = 0.667, a match at IoU
    # thresholds 0.50, 0.55, 0.60 and 0.65 only: AP = 4/10, AP50 = 1, AP75 = 0.
    metrics = evaluate(gt, as_detections(gt, shift_x=20.0))
    assert metrics["AP"] == pytest.approx(0.4, abs=1e-6)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(0.0)


def test_no_detections_and_bad_detections(tmp_path):
    gt = ground_truth()
    assert evaluate(gt, [])["AP"] == 0.0
    with pytest.raises(ValueError, match="detection 0 names image_id 99"):
        evaluate(gt, [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    with pytest.raises(ValueError, match=r"detection 0 lacks field\(s\) \['score'\]"):
        evaluate(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])
    broken = tmp_path / "instances.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="instances.json: not valid JSON"):
        evaluate(str(broken), [])


def test_json_path_and_boxes_to_coco(tmp_path):
    gt = ground_truth()
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    first = gt["annotations"][0]
    x, y, w, h = first["bbox"]
    dets = boxes_to_coco(first["image_id"], np.array([[y, x, y + h, x + w]]), np.array([0.8]),
                         np.array([0]), {0: first["category_id"]})
    assert dets[0]["bbox"] == pytest.approx([x, y, w, h])
    metrics = evaluate(str(path), dets, image_ids=[first["image_id"]])
    assert 0.0 < metrics["AP"] < 1.0  # one of three boxes found on that image
    assert "AP50" in format_metrics(metrics)
