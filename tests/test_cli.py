import pytest

from mobile_spinenet.cli import main
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


@pytest.mark.parametrize("command", [[], ["models"], ["summary"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command + ["--help"])
    assert exit_info.value.code == 0
    assert "usage: mobile-spinenet" in capsys.readouterr().out
