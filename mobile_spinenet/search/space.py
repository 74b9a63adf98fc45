"""The search space of ``mobile-spinenet search`` as data, and the one function that turns a
trial's choices into an :class:`~mobile_spinenet.architecture.Architecture`.

The paper's space (Du et al., Sec. 3.1), on the SpineNet-Mobile blocks of a base model id:

- scale permutations: the intermediate blocks' levels are permuted, and so are the output
  blocks' (P3..P7 stay one output each); a permutation is drawn as one random key per block
  (the blocks sorted by their keys), which any sampler can propose;
- block adjustments: each intermediate block's level moves by one of ``level_adjustments``
  (the paper's -1, 0, +1, +2), kept within L2..L7;
- cross-scale connections: each block's two parents, any two earlier blocks.

And the choices that decide latency on a phone CPU, which the paper's search (by multiply-adds) did
not make: each level's width (the base width times one of ``width_multipliers``, a multiple of
8), and for each block its kernel (3 or 5), expansion and squeeze-excite, and one activation.

A *chooser* makes the choices: anything with Optuna's ``suggest_categorical(name, choices)`` and
``suggest_float(name, low, high)`` (an ``optuna.Trial``, or :class:`RandomChooser`). Every
architecture :func:`sample` returns is valid by construction (``Architecture.validate`` passes).
No TensorFlow here."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from mobile_spinenet.architecture import NUM_LEVELS, Architecture, paper_architecture
from mobile_spinenet.specs import NUM_STEM_BLOCKS, BlockSpec, MBCONV_FILTERS, make_divisible

MIN_BLOCK_LEVEL, MAX_BLOCK_LEVEL = 2, 7


@dataclass(frozen=True)
class SearchSpace:
    base: str = "spinenet49xs"  # the SpineNet-Mobile id whose blocks, head and recipe the search starts from
    permute: bool = True  # scale permutations of the intermediate and of the output blocks
    level_adjustments: tuple = (-1, 0, 1, 2)
    search_parents: bool = True  # each block's two parents (False: the base's)
    width_multipliers: tuple = (0.5, 0.75, 1.0, 1.25, 1.5)
    kernel_sizes: tuple = (3, 5)
    expand_ratios: tuple = (3, 4, 6)
    squeeze_excite: tuple = (True, False)
    activations: tuple = ("relu6", "hard_swish", "swish", "relu")
    se_ratio: float = 0.2

    def validate(self) -> "SearchSpace":
        from mobile_spinenet.architecture import ACTIVATIONS, ArchitectureError
        from mobile_spinenet.specs import KERNEL_SIZES

        paper_architecture(self.base)  # a SpineNet-Mobile id, or a one-line error naming it
        checks = [("level_adjustments", self.level_adjustments, lambda v: isinstance(v, int) and -5 <= v <= 5),
                  ("width_multipliers", self.width_multipliers, lambda v: isinstance(v, (int, float)) and 0 < v <= 4),
                  ("kernel_sizes", self.kernel_sizes, lambda v: v in KERNEL_SIZES),
                  ("expand_ratios", self.expand_ratios, lambda v: isinstance(v, int) and 1 <= v <= 8),
                  ("squeeze_excite", self.squeeze_excite, lambda v: isinstance(v, bool)),
                  ("activations", self.activations, lambda v: v in ACTIVATIONS)]
        for name, values, ok in checks:
            if not values or not all(ok(v) for v in values):
                raise ArchitectureError(f"search space {name}: {list(values)} has a value it cannot take")
        if not 0.0 <= self.se_ratio < 1.0:
            raise ArchitectureError(f"search space se_ratio: {self.se_ratio} must be in [0, 1)")
        return self

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"search space: unknown field(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(sorted(known))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}).validate()

    def width_choices(self, level: int) -> list:
        """The widths level ``level`` may take: the base's width times each multiplier, as multiples of 8."""
        from mobile_spinenet.registry import get_model_info

        base = MBCONV_FILTERS[level] * get_model_info(self.base).spinenet.filter_scale
        return sorted({make_divisible(base * m, 8) for m in self.width_multipliers})


class RandomChooser:
    """Uniform random choices from a seeded generator (tests, and a random-search baseline)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.params: dict = {}

    def suggest_categorical(self, name: str, choices):
        value = list(choices)[int(self.rng.integers(len(choices)))]
        self.params[name] = value
        return value

    def suggest_float(self, name: str, low: float, high: float) -> float:
        value = float(self.rng.uniform(low, high))
        self.params[name] = value
        return value


def _permuted(chooser, prefix: str, values: list) -> list:
    keys = [chooser.suggest_float(f"{prefix}{i}", 0.0, 1.0) for i in range(len(values))]
    return [values[i] for i in np.argsort(keys, kind="stable")]


def _two_parents(chooser, position: int, index: int) -> tuple:
    a = chooser.suggest_categorical(f"parent{position}_a", list(range(index)))
    b = chooser.suggest_categorical(f"parent{position}_b", list(range(index)))
    if b == a:  # two different parents: the next earlier block (or the next later one for block 0)
        b = a - 1 if a > 0 else a + 1
    return (a, b)


def sample(space: SearchSpace, chooser) -> Architecture:
    """The architecture ``chooser``'s choices make in ``space`` (valid by construction)."""
    base = paper_architecture(space.base)
    intermediate = [b for b in base.blocks if not b.is_output]
    outputs = [b for b in base.blocks if b.is_output]
    levels = [b.level for b in intermediate]
    output_levels = [b.level for b in outputs]
    if space.permute:
        levels = _permuted(chooser, "order", levels)
        output_levels = _permuted(chooser, "output_order", output_levels)
    levels = [min(MAX_BLOCK_LEVEL, max(MIN_BLOCK_LEVEL, level + chooser.suggest_categorical(
        f"level_adjust{p}", list(space.level_adjustments)))) for p, level in enumerate(levels)]
    blocks = []
    for position, level in enumerate(levels + output_levels):
        index = NUM_STEM_BLOCKS + position
        parents = (_two_parents(chooser, position, index) if space.search_parents
                   else base.blocks[position].parents)
        blocks.append(BlockSpec(level, "mbconv", tuple(parents), position >= len(levels),
                                kernel_size=chooser.suggest_categorical(f"kernel{position}", list(space.kernel_sizes)),
                                expand_ratio=chooser.suggest_categorical(f"expand{position}", list(space.expand_ratios)),
                                squeeze_excite=chooser.suggest_categorical(f"se{position}", list(space.squeeze_excite))))
    widths = tuple(chooser.suggest_categorical(f"width_L{level}", space.width_choices(level))
                   for level in range(NUM_LEVELS))
    activation = chooser.suggest_categorical("activation", list(space.activations))
    return Architecture(space.base, tuple(blocks), widths, activation, space.se_ratio).validate()
