"""A SpineNet-Mobile architecture as a file: what ``mobile-spinenet search`` finds and every command
takes (``train --spec FILE``; the run records it in its config, so eval, QAT and export rebuild it).

An architecture keeps a base model id's family, head, anchors and recipe and replaces its backbone:
the scale-permuted blocks (level, parents, output flag, and each MBConv block's kernel, expansion
and squeeze-excite), the width of every level L0..L7, the activation and the squeeze-excite ratio.
The file is YAML::

    format: mobile-spinenet-architecture/1
    base: spinenet49xs
    activation: relu6
    se_ratio: 0.2
    widths: [8, 16, 16, 24, 48, 72, 72, 72]     # L0..L7
    blocks:
      - {level: 2, parents: [0, 1], kernel: 3, expand: 6, se: true}
      ...
      - {level: 6, parents: [14, 16], kernel: 5, expand: 4, se: false, output: true}

No TensorFlow here: reading, validating and writing a file stay instant."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import Optional

from mobile_spinenet.specs import BlockSpec, BlockSpecError, SpineNetConfig, validate_spec

FORMAT = "mobile-spinenet-architecture/1"
ACTIVATIONS = ("relu", "relu6", "swish", "hard_swish")
NUM_LEVELS = 8  # widths of L0..L7
DEFAULT_EXPAND = 6  # the paper's MBConv expansion
_FIELDS = {"format", "base", "activation", "se_ratio", "widths", "blocks"}
_BLOCK_FIELDS = {"level", "parents", "kernel", "expand", "se", "output"}


class ArchitectureError(ValueError):
    """An architecture file or dict that cannot be built; the message names the field."""


@dataclass(frozen=True)
class Architecture:
    base: str  # a SpineNet-Mobile model id: family, head width, anchors and recipe
    blocks: tuple  # BlockSpec rows of the scale-permuted network (stem blocks are 0 and 1)
    widths: tuple  # channels of each level L0..L7 (multiples of 8 keep int8 kernels unpadded)
    activation: str = "swish"
    se_ratio: float = 0.2

    def validate(self) -> "Architecture":
        mobile_base(self.base)
        if self.activation not in ACTIVATIONS:
            raise ArchitectureError(f"activation: {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if not isinstance(self.se_ratio, (int, float)) or not 0.0 <= self.se_ratio < 1.0:
            raise ArchitectureError(f"se_ratio: {self.se_ratio!r} must be in [0, 1) (0: no squeeze-excite)")
        if len(self.widths) != NUM_LEVELS or not all(isinstance(w, int) and w > 0 for w in self.widths):
            raise ArchitectureError(f"widths: {list(self.widths)} must be {NUM_LEVELS} positive whole numbers (L0..L7)")
        try:
            validate_spec(self.blocks, "mbconv")
        except BlockSpecError as error:
            raise ArchitectureError(f"blocks: {error}") from None
        return self

    def spinenet_config(self, base: SpineNetConfig) -> SpineNetConfig:
        """``base`` (the base id's config) with this backbone."""
        return replace(base, spec=tuple(self.blocks), level_filters=tuple(self.widths), se_ratio=float(self.se_ratio),
                       channel_divisor=8)

    def to_dict(self) -> dict:
        blocks = []
        for block in self.blocks:
            row = {"level": block.level, "parents": list(block.parents), "kernel": block.kernel_size,
                   "expand": block.expand_ratio or DEFAULT_EXPAND, "se": block.squeeze_excite}
            if block.is_output:
                row["output"] = True
            blocks.append(row)
        return {"format": FORMAT, "base": self.base, "activation": self.activation, "se_ratio": float(self.se_ratio),
                "widths": list(self.widths), "blocks": blocks}

    def digest(self) -> str:
        """16 hex digits that name this architecture (equal architectures, equal digests)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def mobile_base(model_id: str):
    """The registry entry of a SpineNet-Mobile model id; an :class:`ArchitectureError` naming the others."""
    from mobile_spinenet.registry import MODELS

    info = MODELS.get(model_id)
    if info is None or info.spinenet is None or info.spinenet.family != "mbconv":
        mobile = [m for m, i in MODELS.items() if i.spinenet is not None and i.spinenet.family == "mbconv"]
        raise ArchitectureError(f"base: {model_id!r} is not a SpineNet-Mobile model id; one of {', '.join(mobile)}")
    return info


def _block_from(row, index: int) -> BlockSpec:
    where = f"blocks[{index}]"
    if not isinstance(row, dict):
        raise ArchitectureError(f"{where}: expected a mapping with level and parents, got {row!r}")
    unknown = set(row) - _BLOCK_FIELDS
    if unknown:
        raise ArchitectureError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: "
                                f"{', '.join(sorted(_BLOCK_FIELDS))}")
    for name in ("level", "parents"):
        if name not in row:
            raise ArchitectureError(f"{where}: {name} is missing")
    parents = row["parents"]
    if not isinstance(parents, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in parents):
        raise ArchitectureError(f"{where}.parents: {parents!r} must be a list of block indices")
    for name, kind in (("level", int), ("kernel", int), ("expand", int), ("se", bool), ("output", bool)):
        value = row.get(name)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise ArchitectureError(f"{where}.{name}: {value!r} must be a {'whole number' if kind is int else 'boolean'}")
    return BlockSpec(row["level"], "mbconv", tuple(parents), bool(row.get("output", False)),
                     kernel_size=row.get("kernel", 3), expand_ratio=row.get("expand", DEFAULT_EXPAND),
                     squeeze_excite=row.get("se", True))


def architecture_from_dict(data, where: str = "architecture") -> Architecture:
    """An :class:`Architecture` from its dict form (a file's content, or a run config's field),
    validated; an :class:`ArchitectureError` naming ``where`` and the field otherwise."""
    try:
        if not isinstance(data, dict):
            raise ArchitectureError(f"expected a mapping with the fields {', '.join(sorted(_FIELDS))}")
        if data.get("format") != FORMAT:
            raise ArchitectureError(f"format: {data.get('format')!r}; this kit reads {FORMAT!r}")
        unknown = set(data) - _FIELDS
        if unknown:
            raise ArchitectureError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_FIELDS))}")
        for name in ("base", "widths", "blocks"):
            if name not in data:
                raise ArchitectureError(f"{name} is missing")
        if not isinstance(data["blocks"], list) or not data["blocks"]:
            raise ArchitectureError("blocks: must be a non-empty list")
        if not isinstance(data["widths"], list):
            raise ArchitectureError(f"widths: {data['widths']!r} must be a list of {NUM_LEVELS} widths")
        blocks = tuple(_block_from(row, i) for i, row in enumerate(data["blocks"]))
        return Architecture(data["base"], blocks, tuple(data["widths"]), data.get("activation", "swish"),
                            data.get("se_ratio", 0.2)).validate()
    except ArchitectureError as error:
        raise ArchitectureError(f"{where}: {error}") from None


def read_architecture(path: str) -> Architecture:
    """The architecture in the YAML file ``path``; one-line errors name the file and the field."""
    import yaml

    if not os.path.isfile(path):
        raise ArchitectureError(f"--spec {path}: no such file")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ArchitectureError(f"--spec {path}: not YAML ({getattr(error, 'problem', error)}"
                                f"{f', line {mark.line + 1}' if mark else ''})") from None
    return architecture_from_dict(data, where=path)


def format_architecture(architecture: Architecture) -> str:
    """The YAML text of an architecture file (blocks one per line)."""
    data = architecture.to_dict()
    lines = [f"# SpineNet-Mobile architecture ({architecture.digest()}); `mobile-spinenet train --spec THIS_FILE`",
             f"format: {data['format']}", f"base: {data['base']}", f"activation: {data['activation']}",
             f"se_ratio: {data['se_ratio']:g}", f"widths: {json.dumps(data['widths'])}  # L0..L7", "blocks:"]
    for index, row in enumerate(data["blocks"]):
        fields = ", ".join(f"{k}: {json.dumps(v)}" for k, v in row.items())
        lines.append(f"  - {{{fields}}}  # block {index + 2}")
    return "\n".join(lines) + "\n"


def write_architecture(architecture: Architecture, path: str) -> None:
    """Write the file atomically (validated first, so a broken one is never written)."""
    from mobile_spinenet.io_utils import write_atomically

    architecture.validate()
    write_atomically(path, format_architecture(architecture).encode())


def architecture_activation(spec) -> Optional[str]:
    """The activation of an :class:`Architecture` given where a block spec goes (None for other specs)."""
    return spec.activation if isinstance(spec, Architecture) else None


def paper_architecture(model_id: str, activation: Optional[str] = None) -> Architecture:
    """The architecture a SpineNet-Mobile model id builds, as a file would say it (widths rounded
    to multiples of 8, as every architecture file has them)."""
    from mobile_spinenet.specs import make_divisible

    info = mobile_base(model_id)
    config = info.spinenet
    widths = tuple(make_divisible(w * config.filter_scale, 8) for w in _mbconv_table())
    blocks = tuple(replace(block, expand_ratio=block.expand_ratio or config.expand_ratio) for block in config.spec)
    return Architecture(model_id, blocks, widths, activation or info.activation, config.se_ratio).validate()


def _mbconv_table() -> list:
    from mobile_spinenet.specs import MBCONV_FILTERS
    return [MBCONV_FILTERS[level] for level in range(NUM_LEVELS)]
