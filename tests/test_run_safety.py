"""Nothing lost, nothing mislabelled: a run interrupted anywhere resumes to the run an
uninterrupted one writes; a refused or concurrent train writes nothing; divergence stops;
write failures are one-line errors. Interruptions are raised in-process at exact points
(a kill at those points leaves the same files: every write is atomic)."""
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest

from mobile_spinenet.data.demo import make_split
from mobile_spinenet.data.readers import read_dataset
from mobile_spinenet.training.config import load_config
from mobile_spinenet.training.logs import read_rows
from mobile_spinenet.training.runs import RunDirectoryBusy, RunLock, read_sources, sources_record
from mobile_spinenet.training.trainer import RUN_FILE, WEIGHTS_FILE, Trainer, TrainingDiverged

CLI = [sys.executable, "-m", "mobile_spinenet"]
MODEL = "mnv3_small_ssdlite"  # the trainer is under test, not the backbone: the model that traces fastest
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}


class Interrupted(Exception):
    """Stands for a kill at the point where it is raised."""


def _config(**overrides):
    # 16 images, batch 4: 4 steps an epoch; a checkpoint every 2 steps falls on every epoch's last step
    values = dict(image_size=128, batch_size=4, epochs=2, learning_rate=0.02, warmup_epochs=0.5,
                  checkpoint_every_steps=2, precise_bn_images=8, seed=1)
    values.update(overrides)
    return load_config(MODEL, overrides=values)


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    make_split(str(root / "train"), "train", 16, seed=7)
    make_split(str(root / "other"), "train", 16, seed=8)
    return root


def _trainer(data, run_dir, **overrides):
    return Trainer(_config(**overrides), read_dataset(str(data / "train")), str(run_dir), show_progress=False,
                   records=sources_record(str(data / "train"), None))


@pytest.fixture(scope="module")
def interrupted_run(data, tmp_path_factory):
    """A run killed at step 3, resumed, killed again while closing epoch 1 (writing its
    checkpoint, after its metrics row), then resumed to the end past a live lock holder. One
    trainer object plays the three processes (one graph trace instead of three): a resume
    restores weights, BN statistics, optimizer slots and step from the checkpoint, and
    test_training.py's SIGKILL test shows that real processes resume to the same bits."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    trainer = _trainer(data, run_dir)
    step, save = trainer.train_step, trainer.checkpoints.save
    calls = []

    def failing_step(images, targets):
        if len(calls) == 2:
            raise Interrupted("killed during step 3")
        calls.append(1)
        return step(images, targets)

    trainer.train_step = failing_step
    with pytest.raises(Interrupted):
        trainer.fit()
    after_first = trainer.checkpoints.latest()
    trainer.train_step = step

    def failing_save(at_step):
        if at_step == 4:
            raise Interrupted("killed while writing epoch 1's closing checkpoint")
        return save(at_step)

    trainer.checkpoints.save = failing_save
    with pytest.raises(Interrupted):
        trainer.fit(resume=True)
    after_second = trainer.checkpoints.latest()
    trainer.checkpoints.save = save

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from mobile_spinenet.training.runs import "
                               "RunLock; RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)",
                               str(run_dir)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirectoryBusy, match=f"in use by pid {holder.pid}"):
        trainer.fit(resume=True)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    row = trainer.fit(resume=True)  # takes over the dead holder's lock
    return {"run_dir": run_dir, "after_first": after_first, "after_second": after_second, "row": row,
            "trainer": trainer}


def test_a_checkpoint_at_an_epoch_end_means_the_epoch_was_closed(interrupted_run):
    assert interrupted_run["after_first"].endswith("step-00000002/ckpt")
    # killed while closing epoch 1 (step 4): no checkpoint claims step 4, so the resume redoes it
    assert interrupted_run["after_second"].endswith("step-00000002/ckpt")
    run_dir = interrupted_run["run_dir"]
    epochs = read_rows(str(run_dir / "metrics.csv"))
    assert [(r["epoch"], r["step"]) for r in epochs] == [("1", "4"), ("2", "8")]
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["steps"] == 8 and record["last_epoch"]["epoch"] == 2 and "loss" in record["last_epoch"]


def test_epoch_loss_is_the_mean_over_the_whole_epoch_after_a_resume(interrupted_run):
    run_dir = interrupted_run["run_dir"]
    steps = read_rows(str(run_dir / "steps.csv"))
    assert [int(r["step"]) for r in steps] == list(range(1, 9))  # every step once
    for row in read_rows(str(run_dir / "metrics.csv")):
        losses = [float(r["loss"]) for r in steps if r["epoch"] == row["epoch"]]
        assert len(losses) == 4
        assert float(row["loss"]) == pytest.approx(sum(losses) / 4, rel=1e-9)


def test_resume_of_a_finished_run_changes_nothing(interrupted_run, data, caplog):
    run_dir = interrupted_run["run_dir"]
    before = {name: _digest(run_dir / name) for name in (WEIGHTS_FILE, RUN_FILE, "metrics.csv", "config.yaml")}
    trainer = interrupted_run["trainer"]
    with caplog.at_level("INFO"):
        row = trainer.fit(resume=True)
    assert "finished already" in caplog.text
    assert row["epoch"] == 2
    assert {name: _digest(run_dir / name) for name in before} == before


def test_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path, caplog):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from mobile_spinenet.training.runs import "
                               "RunLock; RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)",
                               str(tmp_path)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirectoryBusy, match=f"pid {holder.pid}"):
        RunLock(str(tmp_path)).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with caplog.at_level("WARNING"):
        lock = RunLock(str(tmp_path)).acquire()
    assert f"pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
    assert f"pid {os.getpid()}" in open(lock.path).read()
    lock.release()
    with caplog.at_level("WARNING"):
        RunLock(str(tmp_path)).acquire().release()  # released cleanly: nobody to take over from
    assert caplog.text.count("no longer running") == 1


def test_a_refused_train_writes_nothing_into_the_existing_run(interrupted_run, data):
    run_dir = interrupted_run["run_dir"]
    before = {name: _digest(run_dir / name) for name in ("sources.json", "config.yaml", "label_map.json")}
    refused = subprocess.run(CLI + ["train", "--model", MODEL, "--data", str(data / "other"),
                                    "--out", str(run_dir), "--image-size", "128", "--batch", "4", "--epochs", "1",
                                    "--no-progress"], env=ENV, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "already holds checkpoints; pass --resume" in refused.stderr
    assert {name: _digest(run_dir / name) for name in before} == before
    assert read_sources(str(run_dir))["train"] == str(data / "train")


def test_resume_refuses_flags_that_change_the_recipe_before_tensorflow_loads(interrupted_run, data):
    script = ("import sys; from mobile_spinenet.cli import main; rc = main(sys.argv[1:]); "
              "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", script, "train", "--data", str(data / "train"), "--out",
                             str(interrupted_run["run_dir"]), "--resume", "--epochs", "5"],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--epochs 5 (the run has 2)" in result.stderr
    assert "no tensorflow" in result.stdout


def test_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint(data, tmp_path):
    run_dir = tmp_path / "run"
    trainer = _trainer(data, run_dir, learning_rate=1e5, warmup_epochs=0, epochs=3)
    assert trainer.config.model == MODEL
    with pytest.raises(TrainingDiverged, match="training diverged at step") as error:
        trainer.fit()
    assert "Lower --lr" in str(error.value)
    assert not (run_dir / WEIGHTS_FILE).exists()
    steps = read_rows(str(run_dir / "steps.csv"))
    latest = trainer.checkpoints.latest()
    diverged_at = int(str(error.value).split("step ")[1].split(":")[0])
    assert int(steps[-1]["step"]) == diverged_at  # the curve up to the blow-up is logged
    if latest:  # no checkpoint at or after the step that diverged
        assert int(latest.split("step-")[1].split("/")[0]) < diverged_at


def test_arguments_are_checked_before_tensorflow_loads(tmp_path):
    script = ("import sys; from mobile_spinenet.cli import main; rc = main(sys.argv[1:]); "
              "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(rc)")

    def cli(*args):
        return subprocess.run([sys.executable, "-c", script, *args], env=ENV, capture_output=True, text=True,
                              timeout=300)

    for flag, value, message in (("--epochs", "-1", "argument --epochs: must be > 0, got -1"),
                                 ("--batch", "0", "argument --batch: must be >= 1, got 0"),
                                 ("--lr", "nan", "argument --lr: must be a finite number, got nan"),
                                 ("--lr", "inf", "argument --lr: must be a finite number, got inf"),
                                 ("--epochs", "inf", "argument --epochs: must be a finite number, got inf"),
                                 ("--epochs", "nan", "argument --epochs: must be a finite number, got nan"),
                                 ("--mosaic", "nan", "argument --mosaic: must be a finite number, got nan"),
                                 ("--jitter", "abc", "argument --jitter: expected MIN,MAX (two numbers), got 'abc'"),
                                 ("--jitter", "0.5,x", "argument --jitter: expected a number, got 'x'")):
        result = cli("train", "--model", "spinenet49xxs", "--data", "d", "--out", str(tmp_path / "r"), flag, value)
        assert result.returncode == 2 and message in result.stderr
    afile = tmp_path / "a_file"
    afile.write_text("x")
    result = cli("train", "--model", "spinenet49xxs", "--data", "d", "--out", str(afile))
    assert result.returncode == 2 and f"--out {afile} is an existing file" in result.stderr
    assert "no tensorflow" in result.stdout
    result = cli("models")
    assert result.returncode == 0 and "spinenet49xxs" in result.stdout and "no tensorflow" in result.stdout


def test_recipe_files_name_the_bad_field_and_value():
    with pytest.raises(ValueError, match=r"--batch must be >= 1, got 0 \(config field batch_size\)"):
        load_config("spinenet49xxs", overrides={"batch_size": 0})
    with pytest.raises(ValueError, match=r"--epochs must be > 0, got -1"):
        load_config("spinenet49xxs", overrides={"epochs": -1})
    with pytest.raises(ValueError, match=r"--lr must be a finite number, got nan \(config field learning_rate\)"):
        load_config("spinenet49xxs", overrides={"learning_rate": float("nan")})
    with pytest.raises(ValueError, match=r"focal_gamma must be a finite number, got inf \(config field\)"):
        load_config("spinenet49xxs", overrides={"focal_gamma": float("inf")})


def test_a_run_whose_last_updates_blow_up_the_weights_never_ends_done(data, tmp_path):
    """The loss sees an update only at the next step: a 2-step run at a huge lr used to end "done"
    with weights of 1e7 (the last update is never followed by a loss). The weights are checked
    before every checkpoint and the final weights, and a run's broken weights are never loaded."""
    from mobile_spinenet.training.runs import Run

    run_dir = tmp_path / "run"
    trainer = _trainer(data, run_dir, learning_rate=1e4, warmup_epochs=0, epochs=0.5, batch_size=8)
    assert trainer.total_steps == 1
    with pytest.raises(TrainingDiverged, match="training diverged by step 1: .* (is not finite|reached)"):
        trainer.fit()
    assert not (run_dir / WEIGHTS_FILE).exists() and trainer.checkpoints.latest() is None
    trainer.model.save_weights(str(run_dir / WEIGHTS_FILE))  # broken weights written anyway (an older kit)
    with pytest.raises(ValueError, match="its weights are broken .* the run diverged"):
        Run.open(str(run_dir)).model()  # what eval, export, predict and compare load: refused by name


def test_divergence_rule_uses_the_running_minimum_which_an_explosion_cannot_raise():
    check = Trainer._check_loss
    fake = type("T", (), {"checkpoints": type("C", (), {"latest": staticmethod(lambda: None)})()})()
    lowest = float("inf")
    for loss in (2.0, 1.5, 0.4, 3.0, 0.9):  # a healthy curve with a spike
        lowest = check(fake, loss, lowest, 1, 0.1)
    assert lowest == 0.4
    with pytest.raises(TrainingDiverged, match="more than 100x the lowest so far"):
        check(fake, 41.0, lowest, 6, 0.1)
    with pytest.raises(TrainingDiverged, match="not a finite number"):
        check(fake, float("nan"), lowest, 6, 0.1)


@pytest.mark.slow  # ~110 s; every CI run exports the committed self-contained QAT checkpoint (test_demo_checkpoints)
def test_a_qat_run_exports_and_evaluates_after_its_float_run_is_moved_away(interrupted_run, data, tmp_path, capsys):
    import shutil

    from mobile_spinenet.eval.evaluate import evaluate_path
    from mobile_spinenet.quantization.export_run import export_tflite
    from mobile_spinenet.quantization.qat_run import QatOptions, qat
    from mobile_spinenet.quantization.verify import VerifyOptions

    float_run = tmp_path / "float"
    shutil.copytree(interrupted_run["run_dir"], float_run)
    qat_dir = tmp_path / "qat"
    qat(str(float_run), str(data / "train"), str(qat_dir), QatOptions(epochs=0.25, show_progress=True))
    shown = capsys.readouterr().err  # the QAT build is a stage with its time, calibration a bar
    assert "building the quantization-aware mnv3_small_ssdlite (tfmot) (done in" in shown
    assert "calibrating int8 ranges" in shown
    assert (qat_dir / "qat_model.json").is_file()  # export and eval read the model from it, not through tfmot
    shutil.move(str(float_run), str(tmp_path / "moved"))
    assert json.loads((qat_dir / "qat.json").read_text())["from"] == str(float_run)  # gone
    # One conversion serves both checks: the QAT run converts and verifies without its float run, and
    # the pass of an untrained model (no confident detection) rests on AP alone, so the strict
    # option refuses it, writes no file and keeps the converted one as rejected for inspection.
    from mobile_spinenet.quantization.verify import ExportVerificationError
    with pytest.raises(ExportVerificationError, match="--require-agreement is set"):
        export_tflite(str(qat_dir), str(tmp_path / "qat.tflite"),
                      verification=VerifyOptions(images=4, require_agreement=True), progress=lambda message: None)
    assert not (tmp_path / "qat.tflite").exists()
    report = json.loads((tmp_path / "qat.rejected.json").read_text())
    assert report["quant"] == "int8-qat" and report["verification"]["agreement_checked"] is False
    from mobile_spinenet.quantization.verify import Verification
    verification = {k: v for k, v in report["verification"].items()
                    if k not in ("ap_drop", "passed", "agreement_checked")}
    assert not Verification(**{**verification, "require_agreement": False}).problems  # passes unless strict
    from mobile_spinenet.quantization.interpreter import load_interpreter
    assert load_interpreter(str(tmp_path / "qat.rejected.tflite")) is not None  # a whole, loadable file
    metrics, _ = evaluate_path(str(qat_dir), str(data / "train"), max_images=4)
    assert 0.0 <= metrics["AP"] <= 1.0
    from mobile_spinenet.training.runs import open_run
    qat_run = open_run(str(qat_dir))
    assert qat_run.is_qat and qat_run.own_form == "qat"
    with pytest.raises(ValueError, match="is a QAT run: its weights exist only in the \"qat\" form"):
        qat_run.model("float")


def test_a_run_gives_its_model_in_each_form_with_the_trained_weights(interrupted_run):
    import numpy as np

    import mobile_spinenet.quantization.qat_run  # noqa: F401  (registers the quantized forms)
    from mobile_spinenet.training.runs import open_run

    run = open_run(str(interrupted_run["run_dir"]))
    trained = interrupted_run["trainer"].model
    assert not run.is_qat and run.own_form == "float"
    model = run.model()
    assert all((a.numpy() == b.numpy()).all() for a, b in zip(model.weights, trained.weights))
    image = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype("float32")
    quantizable = run.model("quantizable")
    assert quantizable is not model
    from mobile_spinenet.backend import tf
    ours, theirs = (tf.nest.flatten(m(image, training=False)) for m in (quantizable, model))
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="is a float run: fine-tune it with `mobile-spinenet qat`"):
        run.model("qat")
    with pytest.raises(ValueError, match="model form 'int4' is unknown \\(known: float, qat, quantizable"):
        run.model("int4")


def test_anchor_iou_thresholds_of_the_recipe_reach_the_input_pipeline(data, tmp_path):
    trainer = _trainer(data, tmp_path / "run", positive_iou=0.6, negative_iou=0.3)
    assert (trainer.input_config.positive_iou, trainer.input_config.negative_iou) == (0.6, 0.3)
    with pytest.raises(ValueError, match="0 < negative_iou <= positive_iou <= 1"):
        _config(positive_iou=0.3, negative_iou=0.6)


def test_pack_copies_a_finished_run_without_checkpoints_or_data_paths(interrupted_run, data, tmp_path):
    from mobile_spinenet.cli import main
    from mobile_spinenet.training.runs import PACKED_FILES, SOURCES_FILE, load_run_model, open_run, pack_run

    run_dir = interrupted_run["run_dir"]
    packed = tmp_path / "packed"
    assert main(["pack", str(run_dir), "--out", str(packed)]) == 0
    assert sorted(os.listdir(packed)) == sorted(PACKED_FILES)
    assert not (packed / SOURCES_FILE).exists() and not (packed / "checkpoints").exists()
    assert _digest(packed / WEIGHTS_FILE) == _digest(run_dir / WEIGHTS_FILE)
    model = load_run_model(open_run(str(packed)))  # a run every command opens
    trained = interrupted_run["trainer"].model
    assert all((a.numpy() == b.numpy()).all() for a, b in zip(model.weights, trained.weights))
    with pytest.raises(ValueError, match="exists already"):
        pack_run(str(run_dir), str(packed))
    unfinished = tmp_path / "unfinished"
    _trainer(data, unfinished)._prepare_run_dir(resume=False)  # accepted, never trained
    with pytest.raises(ValueError, match="has not finished"):
        pack_run(str(unfinished), str(tmp_path / "nothing"))
    assert not (tmp_path / "nothing").exists()


def test_train_over_a_packed_run_is_refused_and_leaves_its_files(tmp_path, data):
    """A packed run (`pack`: weights, run.json, config, metrics, no checkpoints/) is a run too."""
    packed = tmp_path / "packed"
    packed.mkdir()
    for name in ("model.weights.h5", "run.json", "config.yaml", "metrics.csv", "label_map.json"):
        (packed / name).write_text(f"{name}\n")
    before = {p.name: _digest(p) for p in packed.iterdir()}
    refused = subprocess.run(CLI + ["train", "--model", MODEL, "--data", str(data / "train"), "--out", str(packed),
                                    "--image-size", "128", "--epochs", "1", "--no-progress"],
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "already holds a run (model.weights.h5, run.json, config.yaml" in refused.stderr
    assert {p.name: _digest(p) for p in packed.iterdir()} == before


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path, data):
    for out in (tmp_path / "missing", tmp_path):
        refused = subprocess.run(CLI + ["train", "--model", MODEL, "--data", str(data / "train"), "--out", str(out),
                                        "--resume", "--no-progress"], env=ENV, capture_output=True, text=True,
                                 timeout=600)
        assert refused.returncode == 2 and f"--resume: {out} holds no run to continue" in refused.stderr
    assert not (tmp_path / "missing").exists()


def test_resume_falls_back_to_the_newest_intact_checkpoint_and_keeps_the_broken_one(tmp_path, caplog):
    import tensorflow as tf

    from mobile_spinenet.training.checkpoints import AtomicCheckpoints

    weight = tf.Variable(0.0)
    saver = AtomicCheckpoints(str(tmp_path / "checkpoints"), tf.train.Checkpoint(weight=weight))
    for step in (1, 2, 3):
        weight.assign(float(step))
        saver.save(step)
    broken = tmp_path / "checkpoints" / "step-00000003"
    for data_file in broken.glob("ckpt.data-*"):
        data_file.write_bytes(data_file.read_bytes()[:3])  # truncated, as by a full disk outside the kit
    index = broken / "ckpt.index"
    index.write_bytes(index.read_bytes()[:20])
    weight.assign(-1.0)
    with caplog.at_level("WARNING"):
        prefix = saver.restore_latest()
    assert prefix.endswith("step-00000002/ckpt") and float(weight.numpy()) == 2.0
    assert "step-00000003 cannot be read" in caplog.text and (tmp_path / "checkpoints" / "broken-step-00000003").is_dir()
    assert saver.latest() == prefix  # `latest` points at the one in use; the resumed run saves step 3 afresh
    weight.assign(3.5)
    assert saver.save(3).endswith("step-00000003/ckpt") and (tmp_path / "checkpoints" / "step-00000003").is_dir()
    (tmp_path / "checkpoints" / ".tmp-step-00000004-999").mkdir()  # a write killed by a second Ctrl-C
    assert saver.remove_leftovers() == [".tmp-step-00000004-999"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "broken-step-00000003", "latest", "step-00000001", "step-00000002", "step-00000003"]


def test_export_of_an_unfinished_run_is_refused_unless_allowed(tmp_path, capsys):
    from mobile_spinenet.cli import main

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: spinenet49xxs\n")
    (run / "checkpoints" / "latest").write_text("step-00000011\n")
    assert main(["export", str(run), "--out", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{run} is unfinished (no model.weights.h5; its latest checkpoint is step 11)" in err, err
    assert "--allow-unfinished" in err and len(err.splitlines()) == 1


def test_epoch_ends_are_checkpointed_only_when_validated_every_n_steps_or_last(data, tmp_path):
    """A checkpoint costs ~2 s; on small data an epoch is a few steps. Between validations an
    epoch's end is saved only once --checkpoint-every steps have passed; the last always is."""
    trainer = _trainer(data, tmp_path / "run", epochs=3, checkpoint_every_steps=6)  # 4 steps an epoch
    saved, save = [], trainer.checkpoints.save

    def recording_save(step):
        saved.append(step)
        return save(step)

    trainer.checkpoints.save = recording_save
    trainer.fit()
    assert trainer.validate_every > 3  # no val set, 8 BN images: nothing to validate before the end
    assert saved == [6, 12]  # mid-epoch at step 6; the ends of epochs 1 (step 4) and 2 (step 8) skipped
