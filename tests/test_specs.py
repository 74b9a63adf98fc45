import pytest

from mobile_spinenet.specs import (FISH_ORDERING, HOURGLASS_ORDERING, NAMED_SPECS, RESNET50_ORDERING,
                                   SPINENET_49, SPINENET_MOBILE_49, BlockSpec, BlockSpecError,
                                   spec_from_ordering, validate_spec)
from mobile_spinenet.zoo import build_backbone, build_model

# The MBConv spec as the reference writes it out (App. A), to check the derivation.
MOBILE_WRITTEN_OUT = [
    (2, (0, 1)), (2, (1, 2)), (4, (1, 2)), (3, (3, 4)), (4, (3, 5)), (6, (4, 6)), (4, (4, 6)), (5, (7, 8)),
    (7, (7, 9)), (5, (9, 10)), (5, (9, 11)), (4, (6, 11)), (3, (5, 11)), (5, (8, 13)), (7, (6, 15)),
    (6, (13, 15))]
MOBILE_OUTPUTS = {11: 4, 12: 3, 13: 5, 14: 7, 15: 6}


def test_spinenet49_table():
    assert len(SPINENET_49) == 16
    assert {b.level: i + 2 for i, b in enumerate(SPINENET_49) if b.is_output} == {4: 12, 3: 13, 5: 14, 7: 15, 6: 16, 2: 17}
    assert [b.block_fn for b in SPINENET_49].count("residual") == 4
    validate_spec(SPINENET_49, "bottleneck")


def test_mobile_spec_matches_appendix_a():
    assert [(b.level, b.parents) for b in SPINENET_MOBILE_49] == MOBILE_WRITTEN_OUT
    assert {i: b.level for i, b in enumerate(SPINENET_MOBILE_49) if b.is_output} == MOBILE_OUTPUTS
    assert {b.block_fn for b in SPINENET_MOBILE_49} == {"mbconv"}
    validate_spec(SPINENET_MOBILE_49, "mbconv")


@pytest.mark.parametrize("spec, message", [
    ((BlockSpec(3, "bottleneck", (0, 5)),), "parent index 5 out of range"),
    ((BlockSpec(3, "bottleneck", (-1, 1)),), "parent index -1 out of range"),
    ((BlockSpec(3, "bottleneck", ()),), "has no parents"),
    ((BlockSpec(3, "mbconv", (0, 1), True),), "block type 'mbconv'"),
    ((BlockSpec(9, "bottleneck", (0, 1), True),), "level 9 is outside"),
    (tuple(SPINENET_49[:-2]), r"missing output level\(s\) \[6\]"),
    (SPINENET_49 + (BlockSpec(3, "bottleneck", (16, 17), True),), "duplicate output level 3"),
])
def test_invalid_specs_are_rejected_clearly(spec, message):
    with pytest.raises(BlockSpecError, match=message):
        validate_spec(spec, "bottleneck")


def test_builder_rejects_invalid_spec_before_building():
    bad = SPINENET_49[:3] + (BlockSpec(4, "bottleneck", (0, 42), True),) + SPINENET_49[4:]
    with pytest.raises(BlockSpecError, match="block 5 .*parent index 42"):
        build_model("spinenet49", image_size=128, spec=bad)


def test_fixed_orderings_are_valid_specs():
    assert len(HOURGLASS_ORDERING) + 2 == 17 and len(FISH_ORDERING) + 2 == 17
    assert sorted(RESNET50_ORDERING).count(3) == 4 and sorted(RESNET50_ORDERING).count(4) == 6
    for name in ("hourglass", "fish", "resnet50_ordering"):
        spec = NAMED_SPECS[name]
        validate_spec(spec, "bottleneck")
        assert sorted(b.level for b in spec if b.is_output) == [3, 4, 5, 6, 7]


@pytest.mark.parametrize("name", ["hourglass", "fish", "resnet50_ordering"])
def test_orderings_build_p3_to_p7(name):
    model = build_backbone("spinenet49", image_size=128, spec=name)
    assert {k: tuple(v.shape[1:]) for k, v in model.output.items()} == {
        f"p{level}": (128 // 2 ** level, 128 // 2 ** level, 256) for level in range(3, 8)}


def test_user_spec_with_single_parents_builds():
    spec = spec_from_ordering([3, 4, 5, 6, 7], "mbconv")
    model = build_backbone("spinenet49xxs", image_size=128, spec=spec)
    assert model.output["p7"].shape[1:3] == (1, 1)


def test_channel_divisor_rounds_every_width_to_its_multiple_and_the_default_keeps_the_papers():
    from dataclasses import replace

    from mobile_spinenet.backend import keras
    from mobile_spinenet.blocks import Ops
    from mobile_spinenet.registry import get_model_info
    from mobile_spinenet.spinenet import build_spinenet
    from mobile_spinenet.specs import MBCONV_FILTERS

    paper = get_model_info("spinenet49xxs").spinenet
    assert [paper.filters(level) for level in range(8)] == [int(w * 0.6) for w in MBCONV_FILTERS.values()]
    assert paper.filters(3) == 24 and paper.filters(4) == 48 and paper.filters(2) == 14  # int(24 * 0.6)
    lite = replace(paper, channel_divisor=8)
    assert [lite.filters(level) for level in range(8)] == [8, 16, 16, 24, 48, 64, 64, 64]

    def conv_widths(config):
        inputs = keras.Input((128, 128, 3))
        model = keras.Model(inputs, build_spinenet(inputs, config, Ops(activation="swish")))
        # the squeeze-excite bottleneck (its "_se_reduce" conv) is a fifth of a width, not a width
        return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
                and not layer.name.endswith("_se_reduce")]

    assert any(width % 8 for width in conv_widths(paper))  # 9, 14, 67 ... at x0.6
    widths = conv_widths(lite)
    assert widths and all(width % 8 == 0 for width in widths), sorted(set(widths))
