"""Block specifications: the scale-permuted architecture as data.

A spec is a tuple of :class:`BlockSpec`. Parent indices point into the running
list of blocks, stem blocks first (both families have two stem blocks), so the
first scale-permuted block has index 2. The builder reads a spec; it never
hard-codes one. Tables come from Du et al., CVPR 2020 (Fig. 3d, App. A, Table 7).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

NUM_STEM_BLOCKS = 2
BLOCK_TYPES = {
    "bottleneck": ("bottleneck", "residual"),
    "mbconv": ("mbconv",),
}


class BlockSpecError(ValueError):
    """A block specification that cannot be built."""


@dataclass(frozen=True)
class BlockSpec:
    """One scale-permuted block: its level, type, parent blocks and output flag, and for MBConv
    blocks the choices a searched architecture makes per block (the defaults are the paper's)."""

    level: int
    block_fn: str
    parents: tuple[int, ...]
    is_output: bool = False
    kernel_size: int = 3  # MBConv: the depthwise kernel
    expand_ratio: Optional[int] = None  # MBConv: the expansion (None: the config's, 6)
    squeeze_excite: bool = True  # MBConv: False leaves this block without the config's squeeze-excite


def _spec(rows: Iterable[tuple]) -> tuple[BlockSpec, ...]:
    return tuple(BlockSpec(level, fn, tuple(parents), bool(out)) for level, fn, parents, out in rows)


# SpineNet-49 (Fig. 3d). Row 17 is the level-2 output the detector does not use.
SPINENET_49 = _spec([
    (2, "bottleneck", (0, 1), False),
    (4, "residual", (0, 1), False),
    (3, "bottleneck", (2, 3), False),
    (4, "bottleneck", (2, 4), False),
    (6, "residual", (3, 5), False),
    (4, "bottleneck", (3, 5), False),
    (5, "residual", (6, 7), False),
    (7, "residual", (6, 8), False),
    (5, "bottleneck", (8, 9), False),
    (5, "bottleneck", (8, 10), False),
    (4, "bottleneck", (5, 10), True),
    (3, "bottleneck", (4, 10), True),
    (5, "bottleneck", (7, 12), True),
    (7, "bottleneck", (5, 14), True),
    (6, "bottleneck", (12, 14), True),
    (2, "bottleneck", (2, 13), True),
])


def mobile_spec_from(spec: Sequence[BlockSpec]) -> tuple[BlockSpec, ...]:
    """The MBConv family's spec (App. A): an extra L2 block, then ``spec`` with
    every block MBConv and every parent shifted by one; level-2 outputs dropped."""
    rows = [BlockSpec(2, "mbconv", (0, 1), False)]
    for block in spec:
        if block.is_output and block.level == 2:
            continue
        rows.append(BlockSpec(block.level, "mbconv", tuple(p + 1 for p in block.parents), block.is_output))
    return tuple(rows)


SPINENET_MOBILE_49 = mobile_spec_from(SPINENET_49)


def spec_from_ordering(levels: Sequence[int], block_fn: str = "bottleneck",
                       output_levels: Iterable[int] = range(3, 8)) -> tuple[BlockSpec, ...]:
    """A spec for a fixed block ordering (the ablations of Table 7).

    The paper searched the cross-scale connections of those orderings; without the
    search each block is fused from the two blocks built just before it, and the
    last block of each output level is that level's output.
    """
    levels = list(levels)
    wanted = set(output_levels)
    last_of_level = {lvl: i for i, lvl in enumerate(levels)}
    rows = []
    for i, level in enumerate(levels):
        index = NUM_STEM_BLOCKS + i
        rows.append(BlockSpec(level, block_fn, (index - 1, index - 2),
                              level in wanted and last_of_level[level] == i))
    return tuple(rows)


def _expand(groups: Sequence[tuple[int, int]]) -> list[int]:
    return [level for count, level in groups for _ in range(count)]


# Table 7 orderings, written as {count x level}; the stem supplies the first two L2 blocks.
HOURGLASS_ORDERING = _expand([(1, 2), (3, 3), (5, 4), (1, 5), (1, 7), (1, 6), (1, 5), (1, 4), (1, 3)])
FISH_ORDERING = _expand([(2, 3), (3, 4), (1, 5), (2, 4), (1, 3), (1, 2), (1, 3), (1, 4), (1, 5),
                         (1, 6), (1, 7)])
# Plain scale-decreased ResNet-50 ({3L2, 4L3, 6L4, 3L5}), with one L6 and one L7 block
# standing in for FPN's extra P6/P7 levels so that it feeds the same P3..P7 head.
RESNET50_ORDERING = _expand([(1, 2), (4, 3), (6, 4), (3, 5), (1, 6), (1, 7)])

NAMED_SPECS = {
    "spinenet49": SPINENET_49,
    "spinenet49_mobile": SPINENET_MOBILE_49,
    "hourglass": spec_from_ordering(HOURGLASS_ORDERING),
    "fish": spec_from_ordering(FISH_ORDERING),
    "resnet50_ordering": spec_from_ordering(RESNET50_ORDERING),
}


def validate_spec(spec: Sequence[BlockSpec], family: str, min_level: int = 3,
                  max_level: int = 7) -> None:
    """Raise :class:`BlockSpecError` naming the block and field that make ``spec`` unbuildable."""
    if family not in BLOCK_TYPES:
        raise BlockSpecError(f"unknown family {family!r}; expected one of {sorted(BLOCK_TYPES)}")
    if not spec:
        raise BlockSpecError("block spec is empty")
    outputs: dict[int, int] = {}
    for offset, block in enumerate(spec):
        index = NUM_STEM_BLOCKS + offset
        where = f"block {index} (spec row {offset})"
        if not isinstance(block, BlockSpec):
            raise BlockSpecError(f"{where}: expected a BlockSpec, got {block!r}")
        if not isinstance(block.level, int) or not 1 <= block.level <= 7:
            raise BlockSpecError(f"{where}: level {block.level!r} is outside 1..7")
        if block.block_fn not in BLOCK_TYPES[family]:
            raise BlockSpecError(f"{where}: block type {block.block_fn!r} is not one of "
                                 f"{BLOCK_TYPES[family]} for the {family} family")
        if not block.parents:
            raise BlockSpecError(f"{where}: has no parents")
        _validate_block_choices(block, where)
        for parent in block.parents:
            if not isinstance(parent, int) or not 0 <= parent < index:
                raise BlockSpecError(f"{where}: parent index {parent!r} out of range; "
                                     f"it must be an earlier block, 0..{index - 1}")
        if block.is_output:
            if block.level in outputs:
                raise BlockSpecError(f"{where}: duplicate output level {block.level} "
                                     f"(block {outputs[block.level]} is already the L{block.level} output)")
            outputs[block.level] = index
    missing = [lvl for lvl in range(min_level, max_level + 1) if lvl not in outputs]
    if missing:
        raise BlockSpecError(f"missing output level(s) {missing}: a detector needs one output "
                             f"block for each level {min_level}..{max_level}")


KERNEL_SIZES = (3, 5, 7)  # depthwise kernels an MBConv block may have


def _validate_block_choices(block: BlockSpec, where: str) -> None:
    """The per-block MBConv choices: kernel, expansion, squeeze-excite (bottleneck blocks keep the defaults)."""
    if block.block_fn != "mbconv":
        if (block.kernel_size, block.expand_ratio, block.squeeze_excite) != (3, None, True):
            raise BlockSpecError(f"{where}: kernel size, expansion and squeeze-excite are MBConv choices; a "
                                 f"{block.block_fn} block keeps 3, none and on")
        return
    if block.kernel_size not in KERNEL_SIZES:
        raise BlockSpecError(f"{where}: kernel size {block.kernel_size!r} is not one of {KERNEL_SIZES}")
    if block.expand_ratio is not None and (not isinstance(block.expand_ratio, int) or not 1 <= block.expand_ratio <= 8):
        raise BlockSpecError(f"{where}: expansion {block.expand_ratio!r} must be a whole number from 1 to 8")
    if not isinstance(block.squeeze_excite, bool):
        raise BlockSpecError(f"{where}: squeeze-excite must be true or false, got {block.squeeze_excite!r}")


# Block "filters" per level; a bottleneck block outputs 4x its filters.
BOTTLENECK_FILTERS = {2: 64, 3: 128, 4: 256, 5: 256, 6: 256, 7: 256}
MBCONV_FILTERS = {0: 8, 1: 16, 2: 24, 3: 40, 4: 80, 5: 112, 6: 112, 7: 112}
BOTTLENECK_STEM_FILTERS = 64


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% down (MobileNet rule)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


@dataclass(frozen=True)
class SpineNetConfig:
    """Everything that tells one SpineNet apart from another."""

    family: str  # "bottleneck" or "mbconv"
    filter_scale: float = 1.0
    endpoint_filters: int = 256
    resample_alpha: float = 0.5
    block_repeats: int = 1
    spec: Sequence[BlockSpec] = field(default=SPINENET_49)
    min_level: int = 3
    max_level: int = 7
    expand_ratio: int = 6
    se_ratio: float = 0.2
    se_gate: str = "sigmoid"  # the squeeze-excite gate; Model Garden's SpineNet-Mobile uses "hard_sigmoid"
    stochastic_depth: float = 0.0
    # 1: the paper's and Model Garden's int(width * scale) (9, 14, 67 ... at x0.6; imported
    # checkpoints need it); 8: widths rounded to multiples of 8 by the MobileNet rule, which int8
    # kernels (XNNPACK packs 8 or 16 channels) run without padding waste
    channel_divisor: int = 1
    # the width of each level L0..L7, replacing the table x filter_scale (a searched architecture's)
    level_filters: Optional[tuple] = None

    def filters(self, level: int) -> int:
        if self.level_filters is not None:
            return self.level_filters[level]
        table = BOTTLENECK_FILTERS if self.family == "bottleneck" else MBCONV_FILTERS
        width = table[level] * self.filter_scale
        return int(width) if self.channel_divisor == 1 else make_divisible(width, self.channel_divisor)

    def se_filters(self, width_in: int) -> int:
        """Squeeze-excite reduction width of a block with ``width_in`` input channels (0: no SE);
        rounded like the block widths when ``channel_divisor`` is set, as MobileNetV3 does."""
        if not self.se_ratio:
            return 0
        width = width_in * self.se_ratio
        return max(1, int(width)) if self.channel_divisor == 1 else make_divisible(width, self.channel_divisor)
