"""Architecture files (what `search` finds and `train --spec` takes): validation with one-line errors,
round trips, and the build they make."""
import os

import pytest

from mobile_spinenet.architecture import (FORMAT, Architecture, ArchitectureError, architecture_from_dict,
                                          paper_architecture, read_architecture, write_architecture)
from mobile_spinenet.specs import BlockSpec


def test_an_architecture_round_trips_through_its_file(tmp_path):
    arch = paper_architecture("spinenet49xs_lite")
    blocks = list(arch.blocks)
    blocks[3] = BlockSpec(blocks[3].level, "mbconv", blocks[3].parents, kernel_size=5, expand_ratio=4,
                          squeeze_excite=False)
    arch = Architecture(arch.base, tuple(blocks), arch.widths, "hard_swish", 0.25)
    path = str(tmp_path / "arch.yaml")
    write_architecture(arch, path)
    again = read_architecture(path)
    assert again.to_dict() == arch.to_dict() and again.digest() == arch.digest()
    assert again.blocks[3].kernel_size == 5 and again.blocks[3].expand_ratio == 4 and not again.blocks[3].squeeze_excite


def test_the_lite_models_architecture_builds_the_lite_model():
    from mobile_spinenet.counting import count_params
    from mobile_spinenet.zoo import build_model

    arch = paper_architecture("spinenet49xs_lite")
    assert arch.activation == "relu6" and arch.se_ratio == 0.0 and all(w % 8 == 0 for w in arch.widths)
    lite = build_model("spinenet49xs_lite", image_size=128, num_classes=3)
    searched = build_model("spinenet49xs_lite", image_size=128, num_classes=3, spec=arch)
    assert count_params(searched) == count_params(lite)
    assert [l.__class__.__name__ for l in searched.layers] == [l.__class__.__name__ for l in lite.layers]


def test_per_block_choices_change_the_built_block():
    from mobile_spinenet.zoo import build_model

    arch = paper_architecture("spinenet49xs")
    blocks = list(arch.blocks)
    blocks[0] = BlockSpec(blocks[0].level, "mbconv", blocks[0].parents, kernel_size=5, expand_ratio=3,
                          squeeze_excite=False)
    changed = Architecture(arch.base, tuple(blocks), arch.widths, "relu", arch.se_ratio)
    model = build_model("spinenet49xs", image_size=128, num_classes=3, spec=changed)
    layers = {layer.name: layer for layer in model.layers}
    assert layers["block2_dw"].kernel_size == (5, 5)
    width_in = layers["block2_expand"].input.shape[-1]
    assert layers["block2_expand"].filters == 3 * width_in
    assert not any(name.startswith("block2_se") for name in layers) and any(n.startswith("block3_se") for n in layers)
    assert layers["block3_dw_act"].activation.__name__ == "relu"  # the architecture's activation


def _valid() -> dict:
    return paper_architecture("spinenet49xs").to_dict()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other/1"), "format: 'other/1'"),
    (lambda d: d.update(base="mnv3_large_ssdlite"), "is not a SpineNet-Mobile model id"),
    (lambda d: d.update(activation="gelu"), "activation: 'gelu'"),
    (lambda d: d.update(se_ratio=1.5), "se_ratio: 1.5"),
    (lambda d: d.update(widths=[8, 16]), "widths: [8, 16] must be 8"),
    (lambda d: d.update(colour="red"), "unknown field(s) colour"),
    (lambda d: d["blocks"][2].update(parents=[0, 9]), "blocks: block 4 (spec row 2): parent index 9 out of range"),
    (lambda d: d["blocks"][2].update(kernel=4), "kernel size 4 is not one of"),
    (lambda d: d["blocks"][2].update(expand=0), "expansion 0"),
    (lambda d: d["blocks"][2].update(se="yes"), "blocks[2].se: 'yes' must be a boolean"),
    (lambda d: d["blocks"][2].update(speed=1), "blocks[2]: unknown field(s) speed"),
    (lambda d: d["blocks"][-1].pop("output"), "missing output level(s)"),
    (lambda d: d.pop("blocks"), "blocks is missing"),
])
def test_a_bad_architecture_is_refused_in_one_line_naming_the_field(change, message):
    data = _valid()
    change(data)
    with pytest.raises(ArchitectureError) as error:
        architecture_from_dict(data, where="arch.yaml")
    text = str(error.value)
    assert text.startswith("arch.yaml: ") and message in text and "\n" not in text, text


def test_a_bad_file_is_named(tmp_path):
    with pytest.raises(ArchitectureError, match="--spec .*missing.yaml: no such file"):
        read_architecture(str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: [\n")
    with pytest.raises(ArchitectureError, match="broken.yaml: not YAML"):
        read_architecture(str(broken))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ArchitectureError, match="empty.yaml: expected a mapping"):
        read_architecture(str(empty))
    assert FORMAT in paper_architecture("spinenet49xxs").to_dict().values()


def test_train_takes_a_spec_file_and_the_run_rebuilds_it(tmp_path):
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.runs import build_kwargs_of

    arch = paper_architecture("spinenet49xxs", activation="relu6")
    config = load_config("spinenet49xxs", "cpu_fast", {"architecture": arch.to_dict(), "image_size": 128})
    kwargs = build_kwargs_of(config, 128, 3)
    assert kwargs["spec"] == arch
    with pytest.raises(ValueError, match="--spec: the architecture's base is spinenet49xxs, not --model spinenet49xs"):
        load_config("spinenet49xs", "cpu_fast", {"architecture": arch.to_dict()})
    with pytest.raises(ValueError, match="not --model mnv3_large_ssdlite"):
        load_config("mnv3_large_ssdlite", "cpu_fast", {"architecture": arch.to_dict()})


def test_train_command_spec_flag_reaches_the_run(tmp_path, monkeypatch, capsys):
    from mobile_spinenet.cli import main

    arch_path = str(tmp_path / "a.yaml")
    write_architecture(paper_architecture("spinenet49xxs", activation="relu6"), arch_path)
    seen = {}

    class StopHere(Exception):
        pass

    def fake_read_task_data(task, data, val):
        raise StopHere()

    import mobile_spinenet.commands.train as train_command
    from mobile_spinenet.training import config as config_module
    real = config_module.load_config

    def spy(model, config_file, overrides):
        seen["config"] = real(model, config_file, overrides)
        return seen["config"]

    monkeypatch.setattr(config_module, "load_config", spy)
    monkeypatch.setattr("mobile_spinenet.training.tasks.read_task_data", fake_read_task_data)
    with pytest.raises(StopHere):
        main(["train", "--spec", arch_path, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert seen["config"].model == "spinenet49xxs"  # --model defaults to the file's base
    assert seen["config"].architecture == read_architecture(arch_path).to_dict()
    assert main(["train", "--spec", str(tmp_path / "nope.yaml"), "--data", str(tmp_path),
                 "--out", str(tmp_path / "run2")]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run2")
