import argparse

import pytest

from mobile_spinenet.cli import build_parser, main
from mobile_spinenet.zoo import MODELS


def test_models_lists_every_id(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(model_id in out for model_id in MODELS)


def test_summary_prints_params_and_multiply_adds(capsys):
    assert main(["summary", "spinenet49xxs", "--image-size", "128", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "params" in out and "multiply-adds" in out and "[1, 3069, 10]" in out


def test_summary_bad_id_is_a_clear_error(capsys):
    assert main(["summary", "spinenet50"]) == 2
    assert "unknown model id 'spinenet50'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["models"], ["summary"], ["train"], ["data"], ["data", "demo"], ["data", "demo-classes"],
                                     ["data", "check"], ["pack"], ["bench"], ["bench", "train"], ["bench", "activations"], ["qat"], ["export"], ["benchmark"], ["eval"], ["predict"], ["compare"],
                                     ["android-assets"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command + ["--help"])
    assert exit_info.value.code == 0
    assert "usage: mobile-spinenet" in capsys.readouterr().out


def _options_without_help(parser, command=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _options_without_help(subparser, command + (name,))
        elif action.option_strings and action.help is None:
            yield " ".join(command + (action.option_strings[-1],))


def test_every_option_of_every_command_says_what_it_does_in_help():
    assert list(_options_without_help(build_parser())) == []


def test_ctrl_c_and_a_training_stop_end_in_one_line_with_the_shells_exit_code(monkeypatch, capsys):
    import signal

    from mobile_spinenet.commands import evaluate
    from mobile_spinenet.training.stop import StopRequested

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "_cmd_eval", interrupted)
    assert main(["eval", "run", "--data", "d"]) == 130
    assert capsys.readouterr().err.strip() == "mobile-spinenet eval: interrupted"

    from mobile_spinenet.commands import train

    def stopped(args):
        raise StopRequested(signal.SIGTERM, 530, 5000, "runs/x/checkpoints/step-00000530")

    monkeypatch.setattr(train, "_cmd_train", stopped)
    assert main(["train", "--model", "spinenet49xxs", "--data", "d", "--out", "o"]) == 143
    err = capsys.readouterr().err.strip()
    assert err == ("mobile-spinenet train: stopped by SIGTERM at step 530 of 5000; checkpoint saved "
                   "(runs/x/checkpoints/step-00000530); the same command with --resume continues from it"), err


def test_data_demo_then_check(tmp_path, capsys):
    assert main(["data", "demo", "--out", str(tmp_path), "--train-images", "6", "--val-images", "3"]) == 0
    assert (tmp_path / "LICENSE-fashion-mnist.txt").exists()
    assert main(["data", "check", str(tmp_path / "val")]) == 0
    out = capsys.readouterr().out
    assert "3 usable images" in out and "10 classes" in out and "no input problems" in out


def test_data_check_names_a_malformed_file(tmp_path, capsys):
    (tmp_path / "annotations.json").write_text("{")
    assert main(["data", "check", str(tmp_path)]) == 2
    assert "annotations.json is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("flags, frozen, seed, float_layers", [
    ([], False, None, ()), (["--freeze-bn", "--seed", "2", "--float-layers", "stem_block0*, block3_*"], True, 2,
                            ("stem_block0*", "block3_*"))])
def test_qat_flags_reach_its_options(flags, frozen, seed, float_layers, monkeypatch, capsys):
    from mobile_spinenet.quantization import qat_run

    seen = []
    monkeypatch.setattr(qat_run, "qat", lambda from_run, data, out, options: seen.append(options) or {"loss": 1.0})
    assert main(["qat", "--from", "runs/x", "--data", "data/train", "--out", "runs/x-qat", "--epochs", "0.5",
                 "--lr", "0.001", "--batch", "4", "--no-progress"] + flags) == 0
    (options,) = seen
    assert (options.freeze_bn, options.seed, options.epochs, options.learning_rate, options.batch_size) == (
        frozen, seed, 0.5, 0.001, 4)
    assert options.float_layers == float_layers
    assert not options.show_progress


@pytest.mark.parametrize("flags, method, images, seed, float_layers", [
    ([], "median", None, 0, ()),
    (["--calib-method", "minmax", "--calib-steps", "7", "--calib-seed", "3"], "minmax", 7, 3, ()),
    (["--float-layers", "stem*"], "median", None, 0, ("stem*",))])
def test_export_calibration_flags_reach_its_options(flags, method, images, seed, float_layers, monkeypatch, tmp_path):
    from mobile_spinenet.quantization import export_run

    seen = []
    monkeypatch.setattr(export_run, "export_tflite", lambda run, out, **kwargs: seen.append(kwargs["calibration"]))
    assert main(["export", "runs/x", "--out", str(tmp_path / "x.tflite"), "--calib", "data/train"] + flags) == 0
    (options,) = seen
    assert (options.method, options.images, options.data, options.seed) == (method, images, "data/train", seed)
    assert options.image_count == (7 if images else 256)
    assert options.float_layers == float_layers


def test_float_layers_are_refused_where_nothing_is_calibrated(tmp_path):
    from mobile_spinenet.quantization.calibration import CalibrationOptions

    with pytest.raises(ValueError, match="--float-layers needs --calib-method median"):
        CalibrationOptions(method="minmax", float_layers=("stem*",)).validate()


def test_export_names_an_unknown_calibration_method(capsys):
    with pytest.raises(SystemExit):
        main(["export", "runs/x", "--out", "x.tflite", "--calib-method", "percentile"])
    assert "invalid choice: 'percentile'" in capsys.readouterr().err


def test_export_refuses_float_layers_for_a_qat_run_whose_ranges_are_learned(tmp_path, capsys):
    import os

    qat_run = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "demo",
                           "spinenet49xxs-qat")
    assert main(["export", qat_run, "--out", str(tmp_path / "x.tflite"), "--float-layers", "stem*"]) == 2
    assert "--float-layers applies to int8 from a float run" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
