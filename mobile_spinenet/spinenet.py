"""The one scale-permuted backbone builder for both SpineNet families.

The bottleneck family (49s/49/96/143/190) and the MBConv family (SpineNet-Mobile)
differ only in their stem, their per-level widths, their block functions and their
resampling; the scale-permuted network is built by reading a block spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops, bottleneck_block, mbconv_block, residual_block
from mobile_spinenet.resample import resample_bottleneck, resample_mobile
from mobile_spinenet.specs import BOTTLENECK_STEM_FILTERS, BlockSpec, SpineNetConfig, validate_spec

@dataclass
class _Block:
    tensor: object
    level: int
    block_fn: str
    filters: int
    consumers: int = 0


def _block_group(x, ops: Ops, config: SpineNetConfig, block_fn: str, filters: int, strides: int,
                 drop_path: float, name: str, spec: Optional[BlockSpec] = None):
    """``block_repeats`` blocks in sequence (B_k^1 -> B_k^2 ...); only the first may stride. An
    MBConv block takes its kernel, expansion and squeeze-excite from ``spec`` (stem blocks: the defaults)."""
    spec = spec or BlockSpec(0, block_fn, (0,))
    for repeat in range(config.block_repeats):
        stride = strides if repeat == 0 else 1
        block_name = f"{name}_r{repeat}" if config.block_repeats > 1 else name
        if block_fn == "bottleneck":
            x = bottleneck_block(x, ops, filters, stride, drop_path, name=block_name)
        elif block_fn == "residual":
            x = residual_block(x, ops, filters, stride, drop_path, name=block_name)
        else:
            width_in = x.shape[-1]
            expand = spec.expand_ratio or config.expand_ratio
            x = mbconv_block(x, ops, filters, width_in * expand, spec.kernel_size, stride,
                             se_filters=config.se_filters(width_in) if spec.squeeze_excite else 0,
                             se_gate=config.se_gate, drop_path=drop_path, name=block_name)
    return x


def _stem(inputs, ops: Ops, config: SpineNetConfig) -> list[_Block]:
    if config.family == "bottleneck":
        x = ops.conv_bn(inputs, BOTTLENECK_STEM_FILTERS, 7, strides=2, name="stem_conv")
        x = keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
        blocks = []
        for i in range(2):
            x = _block_group(x, ops, config, "bottleneck", config.filters(2), 1, 0.0, f"stem_block{i}")
            blocks.append(_Block(x, 2, "bottleneck", config.filters(2)))
        return blocks
    x = ops.conv_bn(inputs, config.filters(0), 3, strides=2, name="stem_conv")
    blocks = []
    for i, (level, stride) in enumerate([(1, 1), (2, 2)]):
        x = _block_group(x, ops, config, "mbconv", config.filters(level), stride, 0.0, f"stem_block{i}")
        blocks.append(_Block(x, level, "mbconv", config.filters(level)))
    return blocks


def _resample(parent: _Block, ops: Ops, config: SpineNetConfig, level: int, channels: int, size: int,
              name: str):
    if config.family == "bottleneck":
        return resample_bottleneck(parent.tensor, ops, parent.filters, parent.level, level, channels, size,
                                   config.resample_alpha, name)
    return resample_mobile(parent.tensor, ops, parent.level, level, channels, size, name)


def build_spinenet(inputs, config: SpineNetConfig, ops: Ops) -> dict[int, object]:
    """Build SpineNet on Keras tensor ``inputs``; return ``{level: feature}`` for P3..P7.

    Each endpoint is a 1x1 conv + BN + activation to ``config.endpoint_filters``.
    """
    validate_spec(config.spec, config.family, config.min_level, config.max_level)
    blocks = _stem(inputs, ops, config)
    image_size = int(inputs.shape[1])
    outputs = {}
    num_blocks = len(config.spec)
    for i, spec in enumerate(config.spec):
        index = len(blocks)
        filters = config.filters(spec.level)
        channels = 4 * filters if spec.block_fn == "bottleneck" else filters
        parents = []
        for j, parent_index in enumerate(spec.parents):
            parent = blocks[parent_index]
            size = -(-image_size // 2 ** spec.level)
            parents.append(_resample(parent, ops, config, spec.level, channels, size, f"block{index}_in{j}"))
            parent.consumers += 1
        if spec.is_output:
            # Sec. 3.3: intermediate blocks nobody consumed join the output block of their level.
            for block in blocks:
                if block.consumers == 0 and block.level == spec.level and block.tensor.shape[-1] == channels:
                    parents.append(block.tensor)
                    block.consumers += 1
        x = parents[0]
        for k, other in enumerate(parents[1:]):  # two inputs per Add: an int8 graph gets no float partial sums
            x = keras.layers.Add(name=f"block{index}_fuse" + (f"{k + 1}" if k else ""))([x, other])
        x = ops.act(x, name=f"block{index}_fuse_act")
        drop_path = config.stochastic_depth * (i + 1) / num_blocks
        x = _block_group(x, ops, config, spec.block_fn, filters, 1, drop_path, f"block{index}", spec)
        blocks.append(_Block(x, spec.level, spec.block_fn, filters))
        if spec.is_output and config.min_level <= spec.level <= config.max_level:
            outputs[spec.level] = x
    return {level: ops.conv_bn(outputs[level], config.endpoint_filters, 1, name=f"endpoint_p{level}")
            for level in range(config.min_level, config.max_level + 1)}

