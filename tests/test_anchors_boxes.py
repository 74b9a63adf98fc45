import numpy as np
import pytest

from mobile_spinenet import box_coder
from mobile_spinenet.anchors import RetinaNetAnchors, SSDAnchors
from mobile_spinenet.backend import tf
from mobile_spinenet.ssdlite import ssd_feature_sizes


def test_retinanet_anchor_count_and_first_anchors():
    anchors = RetinaNetAnchors().boxes(256)
    assert anchors.shape == (9 * sum((256 >> lvl) ** 2 for lvl in range(3, 8)), 4)
    # First location of P3: centre (4, 4); octave 0, ratio 1 is a 32 px square (scale 4 x stride 8).
    square = anchors[1]
    np.testing.assert_allclose(square, [4 - 16, 4 - 16, 4 + 16, 4 + 16], atol=1e-4)
    wide = anchors[2]  # ratio 2 = width / height
    width, height = wide[3] - wide[1], wide[2] - wide[0]
    np.testing.assert_allclose(width / height, 2.0, rtol=1e-5)
    np.testing.assert_allclose(width * height, 32 * 32, rtol=1e-5)


def test_ssd_anchors_per_location_and_sizes():
    sizes = ssd_feature_sizes(320)
    assert sizes == (20, 10, 5, 3, 2, 1)
    anchors = SSDAnchors(sizes)
    assert anchors.anchors_per_location() == [3, 6, 6, 6, 6, 6]
    assert len(anchors.boxes(320)) == 20 * 20 * 3 + 6 * (100 + 25 + 9 + 4 + 1)


def test_ssd_min_scale_sizes_every_map_and_its_default_is_mobilenet_ssdlites():
    sizes = ssd_feature_sizes(256)

    def first_map_sides(anchors):  # (height, width) of the three anchors at the first location
        first = anchors.boxes(256)[:3]
        return np.stack([first[:, 2] - first[:, 0], first[:, 3] - first[:, 1]], axis=1)

    # MobileNet-SSDLite's: a 0.1 square, then 0.2 at ratios 2 and 1/2 (width / height)
    default = first_map_sides(SSDAnchors(sizes))
    np.testing.assert_allclose(default[0], [25.6, 25.6], rtol=1e-5)
    np.testing.assert_allclose(default[1], [51.2 / np.sqrt(2), 51.2 * np.sqrt(2)], rtol=1e-5)
    small = first_map_sides(SSDAnchors(sizes, min_scale=0.1))
    np.testing.assert_allclose(small, default / 2, rtol=1e-5)  # half the scale: half of every side
    # the last map's anchors stay at max_scale: the scales between move linearly
    np.testing.assert_allclose(SSDAnchors(sizes, min_scale=0.1).boxes(256)[-6:], SSDAnchors(sizes).boxes(256)[-6:])


def test_box_coder_round_trip_numpy_and_tf():
    rng = np.random.default_rng(0)
    anchors = RetinaNetAnchors().boxes(128)[:500]
    centre = rng.uniform(10, 110, (500, 2))
    size = rng.uniform(4, 80, (500, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    for scales in [(1, 1, 1, 1), (10, 10, 5, 5)]:
        codes = box_coder.encode(boxes, anchors, scales)
        np.testing.assert_allclose(box_coder.decode(codes, anchors, scales), boxes, atol=1e-3)
        tf_codes = box_coder.encode(tf.constant(boxes), tf.constant(anchors), scales)
        np.testing.assert_allclose(tf_codes.numpy(), codes, atol=1e-4)
    np.testing.assert_allclose(box_coder.encode(anchors, anchors), 0.0, atol=1e-6)


def test_decode_clamps_wild_size_codes_like_torchvision():
    from mobile_spinenet.backend import tf
    from mobile_spinenet.box_coder import MAX_LOG_SCALE, decode

    anchors = np.array([[0.0, 0.0, 16.0, 16.0]], np.float32)
    codes = np.array([[0.0, 0.0, 500.0, 500.0]], np.float32)  # exp(500) is inf in float32
    for boxes in (decode(codes, anchors), decode(tf.constant(codes), tf.constant(anchors)).numpy()):
        assert np.all(np.isfinite(boxes))
        np.testing.assert_allclose(boxes[0, 2] - boxes[0, 0], 16 * np.exp(MAX_LOG_SCALE), rtol=1e-5)  # 1000 px
    ordinary = np.array([[0.1, -0.2, 0.3, -0.4]], np.float32)
    np.testing.assert_allclose(decode(ordinary, anchors)[0, 2] - decode(ordinary, anchors)[0, 0], 16 * np.exp(0.3),
                               rtol=1e-6)  # codes in range are untouched


def test_pre_nms_top_k_limits_each_class_candidates_before_nms():
    from mobile_spinenet.postprocess import NMSConfig, detect

    # one class, three anchors: A (best) and B overlap, C stands apart and scores lowest
    anchors = np.array([[0, 0, 10, 10], [0, 1, 10, 11], [20, 20, 30, 30]], np.float32)
    codes = np.zeros((1, 3, 4), np.float32)
    logits = np.array([[[3.0], [2.0], [1.0]]], np.float32)
    _, scores, _, count = detect(logits, codes, anchors, NMSConfig(pre_nms_top_k=2))
    assert count[0] == 1  # A and B were the candidates, B is suppressed, C never entered
    _, scores, _, count = detect(logits, codes, anchors, NMSConfig(pre_nms_top_k=3))
    assert count[0] == 2 and scores[0, 1] == pytest.approx(1 / (1 + np.exp(-1.0)))
    _, _, _, count = detect(logits, codes, anchors, NMSConfig(pre_nms_top_k=3, max_detections=1))
    assert count[0] == 1
