"""`mobile-spinenet import model-garden` against TF Model Garden's own RetinaNet (a test-only
reference, its leaf modules loaded without the package ``__init__`` chain): a Model Garden model
with random weights and non-trivial BN statistics is saved as a checkpoint the way Model Garden's
trainer saves it (``tf.train.Checkpoint(model=...)``), imported, and the kit's run gives the same
raw class and box outputs and, through the kit's post-processing, the same detections as Model
Garden's detection generator."""
import json

import numpy as np
import pytest

import model_garden_reference as reference

pytestmark = pytest.mark.skipif(not reference.available(), reason="tf-models-official is not installed "
                                "(bash run.sh setup installs it into the test venv)")

IMAGE_SIZE = 128
NUM_CLASSES = 91  # Model Garden counts the background class 0
MOBILE_IDS = {"spinenet49xxs": "49XS", "spinenet49xs": "49S", "spinenet49_mobile": "49"}
LEVELS = range(3, 8)


def _model_garden_retinanet(kit_id, seed=0):
    """Model Garden's RetinaNet for ``kit_id`` as its COCO configs build it, with random weights
    whose outputs are O(1) and spread (at init the class logits all sit at the prior)."""
    from mobile_spinenet.backend import keras

    heads = reference.load("official.vision.modeling.heads.dense_prediction_heads")
    retinanet = reference.load("official.vision.modeling.retinanet_model")
    generator = reference.load("official.vision.modeling.layers.detection_generator")
    spec = keras.layers.InputSpec(shape=[None, IMAGE_SIZE, IMAGE_SIZE, 3])
    if kit_id in MOBILE_IDS:
        mobile = reference.load("official.vision.modeling.backbones.spinenet_mobile")
        scaling = mobile.SCALING_MAP[MOBILE_IDS[kit_id]]
        backbone = mobile.SpineNetMobile(
            input_specs=spec, min_level=3, max_level=7, endpoints_num_filters=scaling["endpoints_num_filters"],
            filter_size_scale=scaling["filter_size_scale"], block_repeats=scaling["block_repeats"], se_ratio=0.2,
            expand_ratio=6, activation="swish")
        head = heads.RetinaNetHead(min_level=3, max_level=7, num_classes=NUM_CLASSES, num_anchors_per_location=9,
                                   num_filters=48, use_separable_conv=True, activation="swish")
    else:
        spinenet = reference.load("official.vision.modeling.backbones.spinenet")
        scaling = spinenet.SCALING_MAP["49"]
        backbone = spinenet.SpineNet(
            input_specs=spec, min_level=3, max_level=7, endpoints_num_filters=scaling["endpoints_num_filters"],
            resample_alpha=scaling["resample_alpha"], block_repeats=scaling["block_repeats"],
            filter_size_scale=scaling["filter_size_scale"], activation="swish")
        head = heads.RetinaNetHead(min_level=3, max_level=7, num_classes=NUM_CLASSES, num_anchors_per_location=9,
                                   num_filters=256, activation="swish")
    model = retinanet.RetinaNetModel(backbone, None, head, generator.MultilevelDetectionGenerator(),
                                     min_level=3, max_level=7, num_scales=3, aspect_ratios=[0.5, 1.0, 2.0],
                                     anchor_size=3)
    rng = np.random.default_rng(seed)
    batch = rng.uniform(-2, 2, (4, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    model(batch, training=True)  # builds every layer
    norms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.gamma.assign(rng.uniform(0.8, 1.25, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.uniform(-0.2, 0.2, layer.beta.shape).astype("float32"))
        layer.momentum = 0.0  # one training pass sets the moving statistics to the batch's
    for variable in head.trainable_variables:
        if "scores" in variable.name or "boxes" in variable.name:  # the two predictors
            std = 0.5 if "kernel" in variable.name else 0.3
            variable.assign(rng.normal(0.0 if "kernel" in variable.name else -1.5 * ("scores" in variable.name),
                                       std, variable.shape).astype("float32"))
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.99
        layer.moving_variance.assign(layer.moving_variance + 0.05)
    # logits with a spread of about 2 and box codes of about 0.3 (SpineNet-49's wide features would
    # give logits of +-100, all scores 1.0, and detections ordered by ties)
    raw_scores, raw_boxes = head(backbone(batch, training=False), training=False)[:2]
    for outputs, name, target in ((raw_scores, "scores", 2.0), (raw_boxes, "boxes", 0.3)):
        spread = float(np.std(np.concatenate([v.numpy().ravel() for v in outputs.values()])))
        kernel = [v for v in head.trainable_variables if f"/{name}/" in v.name and "pointwise" in v.name
                  or v.name.endswith(f"/{name}/kernel:0")][-1]
        kernel.assign(kernel * (target / spread))
    return model, backbone, head


def _all_layers(layer):
    for child in getattr(layer, "_flatten_layers", lambda **_: [])(include_self=False, recursive=True):
        yield child


def _model_garden_outputs(backbone, head, pixels):
    """Model Garden's raw outputs, flattened as the kit flattens them (level, row, column, anchor),
    the background logit dropped: ``(classes [B, N, 90], boxes [B, N, 4], per-level dicts)``."""
    preprocess = reference.load("official.vision.ops.preprocess_ops")
    images = np.stack([preprocess.normalize_image(p).numpy() for p in pixels])
    scores, boxes = head(backbone(images, training=False), training=False)[:2]  # (and attributes)
    flat_scores = np.concatenate([scores[str(l)].numpy().reshape(len(pixels), -1, NUM_CLASSES) for l in LEVELS], 1)
    flat_boxes = np.concatenate([boxes[str(l)].numpy().reshape(len(pixels), -1, 4) for l in LEVELS], 1)
    return flat_scores[:, :, 1:], flat_boxes, scores, boxes


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def _save(model, folder):
    from mobile_spinenet.backend import tf

    return tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))


# 49xs and 49_mobile differ from 49xxs in widths only: behind the slow marker (bash run.sh test -m slow)
@pytest.mark.parametrize("kit_id", ["spinenet49xxs", pytest.param("spinenet49xs", marks=pytest.mark.slow),
                                    pytest.param("spinenet49_mobile", marks=pytest.mark.slow), "spinenet49"])
def test_an_imported_checkpoint_gives_model_gardens_outputs_and_detections(kit_id, pixels, tmp_path, capsys):
    from mobile_spinenet.backend import tf
    from mobile_spinenet.cli import main
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD
    from mobile_spinenet.postprocess import detect
    from mobile_spinenet.training.runs import open_run

    model, backbone, head = _model_garden_retinanet(kit_id)
    checkpoint = _save(model, tmp_path)
    out = tmp_path / "run"
    assert main(["import", "model-garden", checkpoint, "--model", kit_id, "--image-size", str(IMAGE_SIZE),
                 "--out", str(out)]) == 0, capsys.readouterr().err
    run = open_run(str(out))
    record = json.loads((out / "import.json").read_text())
    assert record["variables_used"] == len(model.weights) and "model/_backbone" not in record["variables_unused"]
    assert run.label_map.names[0] == "person" and run.label_map.category_ids[-1] == 90  # COCO ids, no background

    theirs_classes, theirs_boxes, raw_scores, raw_boxes = _model_garden_outputs(backbone, head, pixels)
    kit = run.model()
    ours = kit((pixels.astype("float32") - PIXEL_MEAN) / PIXEL_STD, training=False)
    assert np.abs(theirs_classes).max() > 1.0 and theirs_classes.std() > 0.3  # outputs that can disagree
    # float32 rounding grows with depth and width: within 1e-4 for the mobile ids; SpineNet-49's
    # 1024-channel convs need 1e-4 of the output's range (a wrong weight or op moves outputs by O(1))
    scale = 1.0 if kit_id in MOBILE_IDS else max(1.0, float(np.abs(theirs_classes).max()))
    print(f"{kit_id}: max |diff| classes {np.abs(ours['classes'].numpy() - theirs_classes).max():.2e}, boxes "
          f"{np.abs(ours['boxes'].numpy() - theirs_boxes).max():.2e}, output range {np.abs(theirs_classes).max():.2f}")
    np.testing.assert_allclose(ours["classes"].numpy(), theirs_classes, atol=1e-4 * scale, rtol=0)
    np.testing.assert_allclose(ours["boxes"].numpy(), theirs_boxes, atol=1e-4 * scale, rtol=0)

    # the kit's post-processing of its own outputs = Model Garden's detection generator of its own
    anchor = reference.load("official.vision.ops.anchor")
    generator = reference.load("official.vision.modeling.layers.detection_generator")
    anchors = anchor.Anchor(3, 7, 3, [0.5, 1.0, 2.0], 3.0, [IMAGE_SIZE, IMAGE_SIZE]).multilevel_boxes
    anchors = {k: tf.tile(v[None], [len(pixels), 1, 1, 1]) for k, v in anchors.items()}
    reference_detections = generator.MultilevelDetectionGenerator()(
        raw_boxes, raw_scores, anchors, tf.constant([[IMAGE_SIZE, IMAGE_SIZE]] * len(pixels), tf.float32))
    nms = run.nms_config(pre_nms_top_k=5000)  # Model Garden's top-k; the run clips boxes before NMS as it does
    assert nms.clip_size == IMAGE_SIZE
    boxes, scores, classes, count = detect(ours["classes"], ours["boxes"], run.anchors(), nms)
    for i in range(len(pixels)):
        n = int(reference_detections["num_detections"][i])
        assert count[i] == n and n > 10
        np.testing.assert_array_equal(classes[i, :n] + 1, reference_detections["detection_classes"][i, :n])
        np.testing.assert_allclose(scores[i, :n], reference_detections["detection_scores"][i, :n], atol=1e-5)
        np.testing.assert_allclose(boxes[i, :n], reference_detections["detection_boxes"][i, :n], rtol=1e-3,
                                   atol=1e-3 * IMAGE_SIZE)


def test_a_checkpoint_of_another_model_is_refused_naming_the_first_mismatched_variable(tmp_path, capsys):
    from mobile_spinenet.cli import main

    model, _, _ = _model_garden_retinanet("spinenet49xs")  # Model Garden's 49S
    checkpoint = _save(model, tmp_path)
    assert main(["import", "model-garden", checkpoint, "--model", "spinenet49xxs", "--image-size", str(IMAGE_SIZE),
                 "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "model/_backbone/layer_with_weights-0/kernel" in error and "[3, 3, 3, 5]" in error
    assert "[3, 3, 3, 4]" in error and "stem_conv" in error and "\n" not in error.strip()
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing written
