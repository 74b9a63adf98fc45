"""Detection agreement of export verification: what counts as the same detection."""
from mobile_spinenet.quantization.verify import detection_agreement


def _det(x, y, w, h, score=0.9, category=1, image=1):
    return {"image_id": image, "category_id": category, "bbox": [x, y, w, h], "score": score}


def test_identical_detections_agree_even_with_a_box_clipped_to_zero_area():
    reference = [_det(0, 0, 10, 10), _det(20, 20, 10, 10, 0.8), _det(0, 256, 0, 0, 0.99)]  # the last: clipped away
    count, agreement, error = detection_agreement(reference, [dict(d) for d in reference])
    assert (count, agreement, error) == (2, 1.0, 0.0)


def test_moved_relabelled_or_missing_detections_disagree():
    reference = [_det(0, 0, 10, 10), _det(20, 20, 10, 10), _det(40, 40, 10, 10), _det(60, 60, 10, 10, 0.1)]
    candidate = [_det(1, 1, 10, 10, 0.7), _det(26, 26, 10, 10), _det(40, 40, 10, 10, category=2)]
    count, agreement, error = detection_agreement(reference, candidate)
    assert count == 3  # the 0.1 detection is not confident
    assert agreement == 1 / 3 and abs(error - 0.2) < 1e-9  # only the 1-px shift (IoU 0.68) matches
    assert detection_agreement([], candidate) == (0, None, None)
