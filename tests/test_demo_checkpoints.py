"""The committed demo checkpoints (``checkpoints/demo/``, trained by the kit with the commands in
docs/training.md) are trained models: each opens as a run, and a correct int8 export of the
SpineNet-49xxs QAT one passes verification with the agreement check on (not on AP alone), on
every CI run. The committed classifier (``checkpoints/classes/``) scores 90% on the bundled val
photos."""
import json
import os

import pytest

from mobile_spinenet.cli import main
from mobile_spinenet.data.demo import make_split
from mobile_spinenet.eval.entries import model_id_of, parse_entry
from mobile_spinenet.training.runs import PACKED_FILES, open_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINTS = os.path.join(ROOT, "checkpoints", "demo")
MIN_KERAS_AP = 25.0  # points on the 200 demo val images; the QAT checkpoint scores 36.7


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo val set the checkpoints were validated on (seed 0)."""
    root = tmp_path_factory.mktemp("demo")
    make_split(str(root / "val"), "val", 200, seed=0)  # the checkpoints' val set
    return root


def test_every_committed_checkpoint_is_a_finished_run_with_its_record():
    names = sorted(os.listdir(CHECKPOINTS))
    assert {"spinenet49xxs", "spinenet49xxs-qat"} <= set(names)
    for name in names:
        if not os.path.isdir(os.path.join(CHECKPOINTS, name)):
            continue
        folder = os.path.join(CHECKPOINTS, name)
        assert set(PACKED_FILES) <= set(os.listdir(folder)), name
        run = open_run(folder)
        record = run.finished_record()
        assert record["model"] == run.config.model == model_id_of(name.removesuffix("-qat"))
        assert record["last_epoch"]["val_AP"] > 0.1  # trained: untrained models score 0.000 here


def test_the_20_epoch_checkpoints_are_finished_runs_of_the_same_recipe_trained_longer():
    longer = os.path.join(ROOT, "checkpoints", "demo20")
    names = sorted(name for name in os.listdir(longer) if os.path.isdir(os.path.join(longer, name)))
    assert "spinenet49xxs" in names
    for name in names:
        run = open_run(os.path.join(longer, name))
        record = run.finished_record()
        assert record["model"] == run.config.model == name and record["epochs"] == 20.0, name
        assert record["last_epoch"]["val_AP"] > 0.1, name
        same = open_run(os.path.join(CHECKPOINTS, name)).config  # the committed 12-epoch run of that model
        # the 20-epoch runs decay by cosine (`--schedule cosine`), the 12-epoch ones in steps
        schedule = {key: getattr(same, key) for key in ("schedule", "step_decay_at", "step_decay_factors")}
        assert run.config.schedule == "cosine", name
        assert {**vars(run.config), "epochs": 12.0, "seed": same.seed, **schedule} == vars(same), name


def test_the_demo_checkpoints_are_finished_runs_of_one_recipe_that_the_readme_command_makes():
    """12 epochs of cpu_fast (step decay), one recipe for every model but its family's anchors and,
    for ID@SIZE folders (a second point of a family's curve), the input size; the QAT run aside."""
    names = sorted(name for name in os.listdir(CHECKPOINTS) if os.path.isdir(os.path.join(CHECKPOINTS, name))
                   and not name.endswith("-qat"))
    assert {"spinenet49xxs", "spinenet49xs", "spinenet49xs_lite", "mnv3_small_ssdlite",
            "mnv3_large_ssdlite"} <= set(names), names
    recipe = open_run(os.path.join(CHECKPOINTS, "spinenet49xxs")).config
    assert recipe.schedule == "step" and recipe.epochs == 12.0 and recipe.anchor_scale == 3.0
    for name in names:
        run = open_run(os.path.join(CHECKPOINTS, name))
        record = run.finished_record()
        entry = parse_entry(name)
        assert record["model"] == run.config.model == entry.model_id and record["epochs"] == 12.0, name
        anchors = {"anchor_scale": 3.0, "ssd_min_scale": None} if name.startswith("spinenet") else \
            {"anchor_scale": None, "ssd_min_scale": 0.3}
        size = {"image_size": entry.image_size or recipe.image_size}
        assert vars(run.config) == {**vars(recipe), "model": entry.model_id, **anchors, **size}, name
    # the README's command (`--config cpu_fast --anchor-scale 3 --image-size 256 --epochs 12`) makes it
    from mobile_spinenet.training.config import load_config
    bundled = load_config("spinenet49xxs", "cpu_fast", overrides=dict(anchor_scale=3.0, image_size=256, epochs=12.0))
    assert vars(bundled) == vars(recipe)


def test_int8_export_of_the_trained_qat_checkpoint_passes_verification_with_agreement(demo, tmp_path, capsys):
    # a QAT run is self-contained: the float run it was fine-tuned from is on another machine
    qat_record = json.loads(open(os.path.join(CHECKPOINTS, "spinenet49xxs-qat", "qat.json")).read())
    assert not os.path.exists(qat_record["from"]), qat_record
    out = tmp_path / "xxs.tflite"
    code = main(["export", os.path.join(CHECKPOINTS, "spinenet49xxs-qat"), "--quant", "int8", "--out", str(out),
                 "--val", str(demo / "val"), "--require-agreement"])  # the default: 200 images
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "xxs.json").read_text())
    verification = report["verification"]
    assert verification["passed"] and verification["keras_ap"] >= MIN_KERAS_AP, verification
    assert verification["agreement_checked"] and verification["agreement"] >= 0.8, verification
    assert report["ops"]["float_ops"] in ([], {}), report["ops"]["float_ops"]  # int8 end to end
    assert "PASSED" in capsys.readouterr().out


def test_exporting_a_packed_checkpoint_without_val_names_the_flag_before_converting(tmp_path, monkeypatch, capsys):
    from mobile_spinenet.quantization import export

    def convert(*args, **kwargs):
        raise AssertionError("converted before the verification data was found")

    monkeypatch.setattr(export, "convert", convert)
    folder = os.path.join(CHECKPOINTS, "spinenet49xxs")  # packed: no sources.json
    assert main(["export", folder, "--quant", "fp32", "--out", str(tmp_path / "xxs.tflite")]) == 2
    assert f"--val: {folder} records no val or training data" in capsys.readouterr().err


def test_the_committed_seed_spread_was_measured_on_the_committed_weights_of_every_checkpoint():
    # compare --seed-spread ignores a model's spread when its weights changed ("unknown" in the
    # main job's report): a checkpoint retrained without rerunning `bench seeds` fails here
    from mobile_spinenet.eval.significance import read_seeds
    from mobile_spinenet.training.runs import weights_digest

    measured = read_seeds(os.path.join(CHECKPOINTS, "seeds.json"))["float_weights"]
    models = sorted(n for n in os.listdir(CHECKPOINTS) if os.path.isfile(os.path.join(CHECKPOINTS, n, "run.json"))
                    and not n.endswith("-qat"))
    assert models and {m: measured.get(m) for m in models} == {
        m: weights_digest(os.path.join(CHECKPOINTS, m)) for m in models}


@pytest.mark.parametrize("val", [None, "missing"])
def test_a_savedmodel_export_finds_its_verification_data_before_saving(val, tmp_path, monkeypatch, capsys):
    # a packed checkpoint without --val, and a --val that does not exist, both failed after the save
    from mobile_spinenet.backend import tf

    def save(*args, **kwargs):
        raise AssertionError("saved before the verification data was read")

    monkeypatch.setattr(tf.saved_model, "save", save)
    folder = os.path.join(CHECKPOINTS, "spinenet49xxs")  # packed: no sources.json
    given = ["--val", str(tmp_path / val)] if val else []
    assert main(["export-savedmodel", folder, "--out", str(tmp_path / "served"), *given]) == 2  # verifies 50
    expected = f"dataset {tmp_path / val} does not exist" if val else f"--val: {folder} records no val or training data"
    assert expected in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_predict_takes_a_folder_of_images(demo, tmp_path, capsys):
    # a folder was reported as "does not exist"
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(os.listdir(demo / "val" / "images"))[:2]:
        shutil.copy(demo / "val" / "images" / name, folder / ("b.jpg" if (folder / "a.jpg").exists() else "a.jpg"))
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    model = os.path.join(CHECKPOINTS, "spinenet49xxs")
    assert main(["predict", model, str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'empty'} is a folder without images" in capsys.readouterr().err
    assert main(["predict", model, str(folder), "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [r["image"] for r in results] == [str(folder / "a.jpg"), str(folder / "b.jpg")]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.jpg", "b.jpg", "detections.json"]


def test_the_committed_classifier_scores_90_percent_on_the_bundled_val_photos(tmp_path):
    from mobile_spinenet.data.class_folders import make_demo_class_folders
    from mobile_spinenet.eval.evaluate import evaluate_classifier_path

    folder = os.path.join(ROOT, "checkpoints", "classes", "spinenet49xxs")
    record = open_run(folder).finished_record()
    assert record["task"] == "classification" and record["last_epoch"]["val_top1"] >= 0.9
    make_demo_class_folders(str(tmp_path / "classes"))  # the 1,000 val photos it was scored on
    scores = evaluate_classifier_path(folder, str(tmp_path / "classes" / "val"))
    assert scores["images"] == 1000 and scores["top1"] >= 0.9, scores  # 0.906 when committed


@pytest.mark.slow  # ~70 s: tfmot's rebuild, which every QAT run written since qat_model.json skips
def test_a_qat_run_without_its_model_file_is_rebuilt_through_tfmot_to_the_same_model(tmp_path, images):
    import shutil

    import numpy as np

    import mobile_spinenet.quantization.qat_run  # noqa: F401  (registers the "qat" form)

    older = tmp_path / "older-qat-run"
    shutil.copytree(os.path.join(CHECKPOINTS, "spinenet49xxs-qat"), older)
    (older / "qat_model.json").unlink()  # as a QAT run written before the file existed
    from_file = open_run(os.path.join(CHECKPOINTS, "spinenet49xxs-qat")).model()
    rebuilt = open_run(str(older)).model()
    x = images(256, seed=4)
    want, got = from_file(x, training=False), rebuilt(x, training=False)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name].numpy(), value.numpy(), err_msg=name)


def test_eval_at_another_input_size_builds_the_float_run_for_it_and_refuses_what_it_cannot(demo, tmp_path, capsys):
    from mobile_spinenet.eval.evaluate import evaluate_path, load_detector

    run = os.path.join(CHECKPOINTS, "spinenet49xxs")  # trained at 256 px
    assert load_detector(run, image_size=384).image_size == 384
    own, sized = open_run(run), open_run(run).at_input_size(384)
    assert len(sized.anchors()) * 256 ** 2 == len(own.anchors()) * 384 ** 2  # anchors of the 384 px pyramid
    at_own, _ = evaluate_path(run, str(demo / "val"), max_images=40)
    at_384, _ = evaluate_path(run, str(demo / "val"), max_images=40, image_size=384)
    assert at_384["AP"] != at_own["AP"]  # another model was scored ...
    assert at_384["AP"] >= MIN_KERAS_AP / 100, at_384  # ... with the trained weights and boxes in image pixels

    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"not a model")
    for target, size, says in [(run, 320, "multiple of 128"),
                               (os.path.join(CHECKPOINTS, "spinenet49xxs-qat"), 384, "is a QAT run"),
                               (str(junk), 384, "whose input size is fixed")]:
        capsys.readouterr()
        assert main(["eval", target, "--data", str(demo / "val"), "--image-size", str(size)]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_ssdlite_at_a_size_where_its_1x1_maps_grow_warns_that_their_kernels_trained_only_the_centre_tap(caplog):
    import numpy as np

    from mobile_spinenet.ssdlite import maps_grown_from_one_pixel

    assert maps_grown_from_one_pixel(256, 256) == [] and maps_grown_from_one_pixel(256, 224) == []
    assert maps_grown_from_one_pixel(256, 384) == [4]  # maps 24, 12, 6, 3, 2, 1 against 16, 8, 4, 2, 1, 1
    ssd = open_run(os.path.join(CHECKPOINTS, "mnv3_small_ssdlite"))  # trained at 256 px
    for size, warns in [(224, False), (256, False), (320, True), (384, True)]:
        caplog.clear()
        ssd.at_input_size(size)
        assert ("trained only their centre tap" in caplog.text) == warns, (size, caplog.text)
    caplog.clear()
    open_run(os.path.join(CHECKPOINTS, "spinenet49xxs")).at_input_size(384)  # one head shared by all levels
    assert "centre tap" not in caplog.text

    # The explanation holds for the committed weights: the kernels reading the 1x1 maps at 256 px
    # (map 5's and 6's predictors, the extra layer making map 6) keep eight taps that no trained
    # output depends on, and that the 320 px model's outputs do depend on.
    readers = ["ssd_extra3_dw", "ssd_box4_dw", "ssd_box5_dw", "ssd_class4_dw", "ssd_class5_dw"]
    image = np.random.default_rng(0).uniform(-1, 1, (1, 320, 320, 3)).astype("float32")
    for size in (256, 320):
        model = ssd.at_input_size(size).model()
        x = image[:, :size, :size]
        before = model(x, training=False)["classes"].numpy()
        for name in readers:
            layer = model.get_layer(name)
            kernel, *rest = layer.get_weights()
            centre_only = np.zeros_like(kernel)
            centre_only[1, 1] = kernel[1, 1]
            layer.set_weights([centre_only, *rest])
        after = model(x, training=False)["classes"].numpy()
        assert np.array_equal(before, after) == (size == 256), size
