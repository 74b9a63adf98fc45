"""`mobile-spinenet import model-garden` against TF Model Garden's own RetinaNet (a test-only
reference, its leaf modules loaded without the package ``__init__`` chain): a Model Garden model
with random weights and non-trivial BN statistics is saved as a checkpoint the way Model Garden's
trainer saves it (``tf.train.Checkpoint(model=...)``), imported, and the kit's run gives the same
raw class and box outputs and, through the kit's post-processing, the same detections as Model
Garden's detection generator; written back with `export-checkpoint model-garden`, it restores in
Model Garden and round-trips."""
import json

import numpy as np
import pytest

import model_garden_reference as reference

pytestmark = pytest.mark.skipif(not reference.available(), reason="tf-models-official is not installed "
                                "(bash run.sh setup installs it into the test venv)")

IMAGE_SIZE = 128
NUM_CLASSES = 91  # Model Garden counts the background class 0
MOBILE_IDS = reference.MOBILE_IDS
LEVELS = range(3, 8)


def _model_garden_outputs(backbone, head, pixels):
    """Model Garden's raw outputs, flattened as the kit flattens them (level, row, column, anchor),
    the background logit dropped: ``(classes [B, N, 90], boxes [B, N, 4])``."""
    preprocess = reference.load("official.vision.ops.preprocess_ops")
    images = np.stack([preprocess.normalize_image(p).numpy() for p in pixels])
    scores, boxes = head(backbone(images, training=False), training=False)[:2]  # (and attributes)
    flat_scores = np.concatenate([scores[str(l)].numpy().reshape(len(pixels), -1, NUM_CLASSES) for l in LEVELS], 1)
    flat_boxes = np.concatenate([boxes[str(l)].numpy().reshape(len(pixels), -1, 4) for l in LEVELS], 1)
    return flat_scores[:, :, 1:], flat_boxes


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

    model, backbone, head = reference.retinanet(kit_id)
    checkpoint = _save(model, tmp_path)
    out = tmp_path / "run"
    assert main(["import", "model-garden", checkpoint, "--model", kit_id, "--image-size", str(IMAGE_SIZE),
                 "--out", str(out)]) == 0, capsys.readouterr().err
    run = open_run(str(out))
    record = json.loads((out / "import.json").read_text())
    assert record["variables_used"] == len(model.weights) and "model/_backbone" not in record["variables_unused"]
    assert run.label_map.names[0] == "person" and run.label_map.category_ids[-1] == 90  # COCO ids, no background

    theirs_classes, theirs_boxes = _model_garden_outputs(backbone, head, pixels)
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

    # the kit's post-processing of its outputs = Model Garden's detection generator of the same
    # outputs. (Not of Model Garden's own: their 1e-6 differences reorder anchors whose scores tie
    # to 1e-8, and greedy NMS then keeps a different chain of boxes, a flip a seed in eight shows.)
    anchor = reference.load("official.vision.ops.anchor")
    generator = reference.load("official.vision.modeling.layers.detection_generator")
    anchors = anchor.Anchor(3, 7, 3, [0.5, 1.0, 2.0], 3.0, [IMAGE_SIZE, IMAGE_SIZE]).multilevel_boxes
    anchors = {k: tf.tile(v[None], [len(pixels), 1, 1, 1]) for k, v in anchors.items()}
    kit_scores, kit_boxes = reference.per_level_outputs(ours["classes"], ours["boxes"], IMAGE_SIZE)
    reference_detections = generator.MultilevelDetectionGenerator()(
        kit_boxes, kit_scores, anchors, tf.constant([[IMAGE_SIZE, IMAGE_SIZE]] * len(pixels), tf.float32))
    nms = run.nms_config(pre_nms_top_k=5000)  # Model Garden's top-k; the run clips boxes before NMS as it does
    assert nms.clip_size == IMAGE_SIZE
    boxes, scores, classes, count = detect(ours["classes"], ours["boxes"], run.anchors(), nms)
    for i in range(len(pixels)):
        n = int(reference_detections["num_detections"][i])
        assert count[i] == n and n > 10
        reference.assert_same_detections(
            classes[i, :n], scores[i, :n], boxes[i, :n], reference_detections["detection_classes"][i, :n],
            reference_detections["detection_scores"][i, :n], reference_detections["detection_boxes"][i, :n],
            box_atol=1e-3 * IMAGE_SIZE)


def test_a_checkpoint_of_another_model_is_refused_naming_the_first_mismatched_variable(tmp_path, capsys):
    from mobile_spinenet.cli import main

    model, _, _ = reference.retinanet("spinenet49xs")  # Model Garden's 49S
    checkpoint = _save(model, tmp_path)
    assert main(["import", "model-garden", checkpoint, "--model", "spinenet49xxs", "--image-size", str(IMAGE_SIZE),
                 "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "model/_backbone/layer_with_weights-0/kernel" in error and "[3, 3, 3, 5]" in error
    assert "[3, 3, 3, 4]" in error and "stem_conv" in error and "\n" not in error.strip()
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing written


@pytest.mark.parametrize("kit_id", ["spinenet49xxs", pytest.param("spinenet49", marks=pytest.mark.slow),
                                    pytest.param("spinenet96", marks=pytest.mark.slow),
                                    pytest.param("spinenet143", marks=pytest.mark.slow),
                                    pytest.param("spinenet190", marks=pytest.mark.slow)])
def test_model_gardens_layer_order_table_is_what_its_builder_gives(kit_id):
    """The export writes backbone layers under Model Garden's positional object names, taken from
    the committed table (tests/make_model_garden_order.py); Model Garden's builder must agree."""
    from mobile_spinenet.interop.model_garden import ORDER_FILE, order_key
    from mobile_spinenet.registry import get_model_info

    table = json.loads(open(ORDER_FILE).read())
    assert table[order_key(get_model_info(kit_id).spinenet)] == reference.backbone_object_order(kit_id), kit_id


@pytest.mark.parametrize("kit_id", ["spinenet49xxs", pytest.param("spinenet49", marks=pytest.mark.slow)])
def test_an_exported_checkpoint_restores_in_model_garden_and_round_trips(kit_id, pixels, tmp_path, capsys):
    """import -> export-checkpoint -> Model Garden restores it and computes the kit's outputs;
    importing the exported checkpoint again gives the same weights."""
    from mobile_spinenet.backend import tf
    from mobile_spinenet.cli import main
    from mobile_spinenet.training.runs import open_run

    model, _, _ = reference.retinanet(kit_id)
    run_dir = tmp_path / "run"
    assert main(["import", "model-garden", _save(model, tmp_path), "--model", kit_id, "--image-size",
                 str(IMAGE_SIZE), "--out", str(run_dir)]) == 0
    out = tmp_path / "exported" / "ckpt-1"
    assert main(["export-checkpoint", "model-garden", str(run_dir), "--out", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "exported" / "ckpt-1.model_garden.json").read_text())
    assert summary["differences"] == [] and summary["model_garden_config"]["anchor_size"] == 3.0

    fresh, backbone, head = reference.retinanet(kit_id, seed=5)  # other random weights, then the export's
    tf.train.Checkpoint(model=fresh).read(str(out)).expect_partial()
    theirs_classes, theirs_boxes = _model_garden_outputs(backbone, head, pixels)
    kit = open_run(str(run_dir)).model()
    ours = kit((pixels.astype("float32") - 127.5) / 127.5, training=False)
    scale = 1.0 if kit_id in MOBILE_IDS else max(1.0, float(np.abs(theirs_classes).max()))
    np.testing.assert_allclose(ours["classes"].numpy(), theirs_classes, atol=1e-4 * scale, rtol=0)
    np.testing.assert_allclose(ours["boxes"].numpy(), theirs_boxes, atol=1e-4 * scale, rtol=0)
    from mobile_spinenet.interop.model_garden import drop_background
    for original, restored in zip(model.weights, fresh.weights):  # every Model Garden variable restored
        a, b = original.numpy(), restored.numpy()
        if "/scores/" in original.name and "depthwise" not in original.name:  # the background logit is not kept
            a, b = drop_background(a, 9), drop_background(b, 9)
        np.testing.assert_array_equal(a, b, err_msg=original.name)

    again = tmp_path / "again"
    assert main(["import", "model-garden", str(out), "--model", kit_id, "--image-size", str(IMAGE_SIZE),
                 "--out", str(again)]) == 0
    first, second = kit.weights, open_run(str(again)).model().weights
    assert [w.name for w in first] == [w.name for w in second]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, second))


# 100 s here; test_export's android-assets test checks the same plumbing on every run with a kit run
# set to clip_boxes, and test_android_core the Java core on an imported model's raw outputs
@pytest.mark.slow
def test_an_imported_models_raw_tflite_file_is_decoded_as_model_garden_decodes_it(tmp_path, capsys):
    """A raw-output export (--nms none) of an imported run records the run's post-processing (boxes
    clipped to the image before NMS); `eval` of the file and the Android assets (NAME.nms.txt for the
    Java core) decode it that way, so the file's detections are the run's."""
    from mobile_spinenet.cli import main
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD
    from mobile_spinenet.eval.detector_eval import keras_predictor
    from mobile_spinenet.eval.evaluate import load_detector
    from mobile_spinenet.training.runs import open_run

    model, _, head = reference.retinanet("spinenet49xxs", seed=3, num_classes=4)
    run_dir, raw = tmp_path / "run", tmp_path / "raw.tflite"
    assert main(["import", "model-garden", _save(model, tmp_path), "--model", "spinenet49xxs", "--image-size",
                 str(IMAGE_SIZE), "--out", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--quant", "fp32", "--nms", "none", "--no-verify", "--out", str(raw)]) == 0
    report = json.loads((tmp_path / "raw.json").read_text())
    assert report["postprocess"]["clip_size"] == IMAGE_SIZE and report["anchor_scale"] == 3.0
    assets = tmp_path / "assets"
    assert main(["android-assets", str(raw), "--assets", str(assets), "--name", "imported.tflite"]) == 0
    settings = dict(line.split() for line in (assets / "imported.nms.txt").read_text().splitlines())
    assert settings["clip_size"] == str(IMAGE_SIZE) and settings["pre_nms_top_k"] == "1000"

    run = open_run(str(run_dir))
    images = (np.random.default_rng(11).integers(0, 256, (2, IMAGE_SIZE, IMAGE_SIZE, 3)) - PIXEL_MEAN) / PIXEL_STD
    images = images.astype(np.float32)
    want = keras_predictor(run.model(), run.anchors(), run.nms_config())(images)
    got = load_detector(str(raw)).predict(images)
    np.testing.assert_array_equal(got[3], want[3])
    assert want[3].min() > 10
    for i in range(len(images)):
        n = int(want[3][i])
        np.testing.assert_array_equal(got[2][i, :n], want[2][i, :n])
        np.testing.assert_allclose(got[0][i, :n], want[0][i, :n], atol=1e-3 * IMAGE_SIZE)
    boxes = want[0][:, :int(want[3].min())]
    assert (boxes == 0).any() or (boxes == IMAGE_SIZE).any()  # some boxes were clipped: the setting mattered
    unclipped = keras_predictor(run.model(), run.anchors(), run.nms_config(clip_size=None))(images)
    assert not np.allclose(unclipped[0], want[0], atol=1e-3 * IMAGE_SIZE)


@pytest.mark.slow  # an import, an int8 conversion and its verification: ~2 min
def test_an_imported_runs_int8_export_passes_the_kits_verification(tmp_path, capsys):
    """An imported run exports like any run: int8 with the in-graph post-processing, calibrated and
    verified against the run's Keras model (decoded as the file decodes it) on demo images."""
    from mobile_spinenet.cli import main
    from mobile_spinenet.data.demo import make_split

    model, _, head = reference.retinanet("spinenet49xxs")
    bias = [v for v in head.trainable_variables if "scores" in v.name and "bias" in v.name][-1]
    bias.assign(bias - 3.0)  # most anchors below the score threshold, as in a trained detector
    run_dir, images = tmp_path / "run", tmp_path / "images"
    assert main(["import", "model-garden", _save(model, tmp_path), "--model", "spinenet49xxs", "--image-size",
                 "256", "--out", str(run_dir)]) == 0, capsys.readouterr().err
    make_split(str(images), "val", 60, seed=3)
    out = tmp_path / "imported.tflite"
    assert main(["export", str(run_dir), "--quant", "int8", "--calib", str(images), "--val", str(images),
                 "--verify-images", "60", "--out", str(out)]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "imported.json").read_text())
    assert report["verification"]["passed"], report["verification"]
    assert report["ops"]["float_ops"] in ([], {}), report["ops"]["float_ops"]  # int8 end to end
    print(report["verification"])
