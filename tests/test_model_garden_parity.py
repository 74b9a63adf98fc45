"""The kit's SpineNet detectors against TF Model Garden's own RetinaNet (``tf-models-official``,
installed by ``run.sh`` into the test venv only, its leaf modules loaded without the package
``__init__`` chain): the same weight shapes in the backbone and in the head, so that a Model Garden
checkpoint has a place for every variable. The one difference is the class predictor: Model
Garden predicts an explicit background class (index 0, never scored), the kit does not."""
from collections import Counter

import pytest

import model_garden_reference as reference

pytestmark = pytest.mark.skipif(not reference.available(), reason="tf-models-official is not installed "
                                "(bash run.sh setup installs it into the test venv)")

IMAGE_SIZE = 128
COCO_CLASSES = 90  # Model Garden's num_classes=91 counts the background class 0
# kit id -> Model Garden's SpineNet-Mobile model_id (SCALING_MAP), as docs/pretrained.md lists them
MOBILE_IDS = {"spinenet49xxs": "49XS", "spinenet49xs": "49S", "spinenet49_mobile": "49"}


def _model_garden_retinanet(kit_id):
    from mobile_spinenet.backend import keras
    from mobile_spinenet.registry import get_model_info

    mobile = reference.load("official.vision.modeling.backbones.spinenet_mobile")
    heads = reference.load("official.vision.modeling.heads.dense_prediction_heads")
    scaling = mobile.SCALING_MAP[MOBILE_IDS[kit_id]]
    backbone = mobile.SpineNetMobile(
        input_specs=keras.layers.InputSpec(shape=[None, IMAGE_SIZE, IMAGE_SIZE, 3]), min_level=3, max_level=7,
        endpoints_num_filters=scaling["endpoints_num_filters"], filter_size_scale=scaling["filter_size_scale"],
        block_repeats=scaling["block_repeats"], se_ratio=0.2, expand_ratio=6, activation="swish")
    info = get_model_info(kit_id)
    head = heads.RetinaNetHead(min_level=3, max_level=7, num_classes=COCO_CLASSES + 1, num_anchors_per_location=9,
                               num_filters=info.head_filters, use_separable_conv=True, activation="swish")
    features = backbone(keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)))
    head(features)
    return backbone, head


def _shapes(weights):
    return Counter(tuple(w.shape) for w in weights)


@pytest.mark.parametrize("kit_id", sorted(MOBILE_IDS))
def test_mobile_detector_has_model_gardens_weight_shapes_but_the_background_logit(kit_id):
    from mobile_spinenet.zoo import build_model

    backbone, head = _model_garden_retinanet(kit_id)
    kit = build_model(kit_id, image_size=IMAGE_SIZE, num_classes=COCO_CLASSES)
    in_head = lambda w: w.name.startswith(("classes_", "boxes_"))  # noqa: E731
    kit_backbone = [w for w in kit.weights if not in_head(w)]
    kit_head = [w for w in kit.weights if in_head(w)]
    assert _shapes(kit_backbone) == _shapes(backbone.weights)
    assert sum(w.shape.num_elements() for w in kit_backbone) == backbone.count_params()
    # Model Garden's class predictor has 9 anchors x (90 + 1) outputs, the kit's 9 x 90
    theirs, ours = _shapes(head.weights), _shapes(kit_head)
    filters = int(head._config_dict["num_filters"])
    background = {(1, 1, filters, 9 * (COCO_CLASSES + 1)): 1, (9 * (COCO_CLASSES + 1),): 1}
    kit_only = {(1, 1, filters, 9 * COCO_CLASSES): 1, (9 * COCO_CLASSES,): 1}
    assert theirs - ours == Counter(background) and ours - theirs == Counter(kit_only)
