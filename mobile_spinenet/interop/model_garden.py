"""TF Model Garden RetinaNet checkpoints (``official.vision``, SpineNet or SpineNet-Mobile
backbone, RetinaNet head) read into an ordinary kit run directory.

Variables are mapped by structure, never by their checkpoint position:

- the **head** by its object path (``_cls_convs/2``, ``_cls_norms/<level>/<conv>``,
  ``_classifier``), which names subnet, conv and level;
- the **backbone's blocks** by their object path inside the block (``_conv0`` the expansion,
  ``_squeeze_excitation/_se_reduce`` ...) and their creation name (``inverted_bottleneck_block_7``);
- the **backbone's other layers** (stem, resampling, endpoints) by the creation name the checkpoint
  records for every variable (``conv2d_12/kernel``): Model Garden's builder creates them while it
  walks the block spec, so replaying that walk over the kit's own spec names the role of each one
  (block 5, input 1, second halving), per layer class.

Every checkpoint variable is used or reported; every kit variable gets a value; each shape is
checked, and the first mismatch is an error naming both sides. Where Model Garden's detector
differs from the kit's, the imported run records the kit option that makes it decode the same:
anchor size (``anchor_scale``), the squeeze-excite gate (hard sigmoid), ImageNet input
normalisation, the head width, and the background logit, which is dropped (Model Garden scores
classes 1..K with a sigmoid and never reads class 0)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mobile_spinenet.interop.coco_classes import class_names

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
BACKBONE, HEAD = "model/_backbone/", "model/_head/"
IMPORT_FILE = "import.json"
# Model Garden's backbone object names (layer_with_weights-N) per structure, in its creation order:
# generated from Model Garden's builder by tests/make_model_garden_order.py (the export writes them)
ORDER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_garden_order.json")
# kit id -> Model Garden's model_id (SpineNet-Mobile's SCALING_MAP, SpineNet's SCALING_MAP)
MODEL_GARDEN_IDS = {"spinenet49xxs": "49XS", "spinenet49xs": "49S", "spinenet49_mobile": "49",
                    "spinenet49s": "49S", "spinenet49": "49", "spinenet96": "96", "spinenet143": "143",
                    "spinenet190": "190"}
# Model Garden's block object paths -> the kit block's layer suffix, per block function
BLOCK_PARTS = {
    "mbconv": {"_conv0": "_expand", "_norm0": "_expand_bn", "_conv1": "_dw", "_norm1": "_dw_bn",
               "_squeeze_excitation/_se_reduce": "_se_reduce", "_squeeze_excitation/_se_expand": "_se_expand",
               "_conv2": "_project", "_norm2": "_project_bn"},
    "bottleneck": {"_shortcut": "_proj", "_norm0": "_proj_bn", "_conv1": "_conv1", "_norm1": "_conv1_bn",
                   "_conv2": "_conv2", "_norm2": "_conv2_bn", "_conv3": "_conv3", "_norm3": "_conv3_bn"},
    "residual": {"_shortcut": "_proj", "_norm0": "_proj_bn", "_conv1": "_conv1", "_norm1": "_conv1_bn",
                 "_conv2": "_conv2", "_norm2": "_conv2_bn"},
}
BLOCK_CLASSES = {"inverted_bottleneck": "mbconv", "bottleneck": "bottleneck", "residual": "residual"}
NORM_ATTRIBUTES = ("gamma", "beta", "moving_mean", "moving_variance")
HEAD_SUBNETS = {"cls": "classes", "box": "boxes"}
HEAD_PREDICTORS = {"_classifier": "classes", "_box_regressor": "boxes"}


@dataclass(frozen=True)
class CheckpointVariable:
    key: str  # object path, without the /.ATTRIBUTES/VARIABLE_VALUE suffix
    full_name: str  # the variable's name when it was saved, e.g. conv2d_12/kernel
    shape: tuple


@dataclass(frozen=True)
class Assignment:
    """One checkpoint variable into one kit weight: ``layer.attribute``, after ``drop_background``."""

    variable: CheckpointVariable
    layer: str
    attribute: str
    role: str  # said in errors: "block 5 input 1 halving 2 (depthwise)"
    drop_background: int = 0  # > 0: the class predictor; its anchor count


@dataclass
class _Layer:
    """One backbone layer object of the checkpoint (``layer_with_weights-N``)."""

    variables: dict  # path inside the layer -> CheckpointVariable
    object_name: str = ""  # its name in the backbone's object graph, layer_with_weights-N
    kind: str = ""  # conv, depthwise, norm, block:<block function>
    order: int = 0  # its creation counter


def checkpoint_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix or a folder holding a ``checkpoint`` index file."""
    from mobile_spinenet.backend import tf

    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"{path} holds no TensorFlow checkpoint (no `checkpoint` index file)")
        return latest
    if not os.path.isfile(path + ".index"):
        raise ValueError(f"{path} is not a TensorFlow checkpoint ({path}.index does not exist)")
    return path


def read_checkpoint(path: str) -> tuple:
    """``(reader, {key: CheckpointVariable})`` of an object-based (TF2) checkpoint."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    from mobile_spinenet.backend import tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        graph_bytes = reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    except Exception as error:  # noqa: BLE001 - TF raises several types for an unreadable file
        raise ValueError(f"{prefix} is not a readable TF2 object-based checkpoint: {str(error).splitlines()[0]}") from None
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(graph_bytes)
    shapes = reader.get_variable_to_shape_map()
    variables = {}
    for node in graph.nodes:
        for attribute in node.attributes:
            if attribute.checkpoint_key in shapes and attribute.checkpoint_key.endswith(SUFFIX):
                key = attribute.checkpoint_key[:-len(SUFFIX)]
                variables[key] = CheckpointVariable(key, attribute.full_name,
                                                    tuple(shapes[attribute.checkpoint_key]))
    return reader, variables


def _counter(name: str) -> int:
    """The creation counter Keras appends to a layer name: ``conv2d`` 0, ``conv2d_12`` 12."""
    match = re.search(r"_(\d+)$", name)
    return int(match.group(1)) if match else 0


def _classify(layer: _Layer, key: str) -> _Layer:
    parts = set(layer.variables)
    first = next(iter(layer.variables.values()))
    names = first.full_name.split("/")
    if any("/" in p for p in parts):  # sublayers: a block, numbered per block class
        # its own name is above its sublayers' (".../inverted_bottleneck_block_7/conv2d/kernel")
        blocks = [n for n in names[:-2] if re.match(r"^(inverted_bottleneck|bottleneck|residual)_block", n)]
        if not blocks:
            raise ValueError(f"checkpoint layer {key} has sublayers but no block name in {first.full_name!r}")
        layer.kind = "block:" + BLOCK_CLASSES[re.match(r"^(inverted_bottleneck|bottleneck|residual)", blocks[-1]).group(1)]
        layer.order = _counter(blocks[-1])
    elif parts <= {"kernel", "bias"}:
        layer.kind = "conv"
    elif parts == {"depthwise_kernel"}:
        layer.kind = "depthwise"
    elif parts == set(NORM_ATTRIBUTES):
        layer.kind = "norm"
    else:
        raise ValueError(f"checkpoint layer {key} holds {sorted(parts)}, which no Model Garden SpineNet layer has")
    if not layer.kind.startswith("block"):
        if len(names) < 2:
            raise ValueError(f"checkpoint variable {first.key} records no layer name ({first.full_name!r}), "
                             f"so its place in the network cannot be told")
        layer.order = _counter(names[-2])
    return layer


def backbone_layers(variables: dict) -> dict:
    """``{kind: [_Layer in creation order]}`` of the checkpoint's backbone."""
    layers: dict = {}
    for key, variable in variables.items():
        if not key.startswith(BACKBONE):
            continue
        head, _, rest = key[len(BACKBONE):].partition("/")
        layers.setdefault(head, _Layer({}, head)).variables[rest] = variable
    by_kind: dict = {}
    for key, layer in layers.items():
        _classify(layer, BACKBONE + key)
        by_kind.setdefault(layer.kind, []).append(layer)
    for kind, group in by_kind.items():
        orders = [layer.order for layer in group]
        if len(set(orders)) != len(orders):
            raise ValueError(f"two {kind} layers of the checkpoint's backbone have one creation name; its "
                             f"variable names cannot place them")
        group.sort(key=lambda layer: layer.order)
    return by_kind


@dataclass
class Roles:
    """The kit layer of each backbone layer, per class, in Model Garden's creation order."""

    conv: list = field(default_factory=list)
    depthwise: list = field(default_factory=list)
    norm: list = field(default_factory=list)
    block: list = field(default_factory=list)  # (kit block name, block function)

    def add_conv_bn(self, name: str, kind: str = "conv") -> None:
        getattr(self, kind).append(name)
        self.norm.append(f"{name}_bn")


def order_key(config) -> str:
    """The backbone structure a Model Garden layer order belongs to: family and block repeats."""
    return f"{config.family}-r{config.block_repeats}"


def _block_names(name: str, block_repeats: int) -> list:
    return [f"{name}_r{r}" for r in range(block_repeats)] if block_repeats > 1 else [name]


def backbone_roles(config) -> Roles:
    """Replay Model Garden's SpineNet / SpineNet-Mobile build over ``config`` (a
    :class:`~mobile_spinenet.specs.SpineNetConfig`): its layers in creation order, named as the kit
    names them."""
    roles = Roles()
    mobile = config.family == "mbconv"
    roles.add_conv_bn("stem_conv")
    levels, block_fns = ([1, 2], ["mbconv", "mbconv"]) if mobile else ([2, 2], ["bottleneck", "bottleneck"])
    for i in range(2):
        roles.block += [(n, block_fns[i]) for n in _block_names(f"stem_block{i}", config.block_repeats)]
    for i, spec in enumerate(config.spec):
        index, level = i + 2, min(spec.level, config.max_level)
        for j, parent in enumerate(spec.parents):
            name = f"block{index}_in{j}"
            if mobile:
                for step in range(level - levels[parent]):
                    roles.add_conv_bn(f"{name}_down{step}", "depthwise")
            else:
                roles.add_conv_bn(f"{name}_alpha")
                if level > levels[parent]:
                    roles.add_conv_bn(f"{name}_down")
            roles.add_conv_bn(f"{name}_match")
        roles.block += [(n, spec.block_fn) for n in _block_names(f"block{index}", config.block_repeats)]
        levels.append(level)
        block_fns.append(spec.block_fn)
    for level in range(config.min_level, config.max_level + 1):
        roles.add_conv_bn(f"endpoint_p{level}")
    return roles


def _describe(layer: str) -> str:
    match = re.match(r"block(\d+)_in(\d+)_(\w+)", layer)
    return f"block {match.group(1)}'s input {match.group(2)} ({match.group(3)})" if match else layer


def expected_roles(config, model_layers: set) -> dict:
    """``{kind: [kit layer, or (block, block function)]}`` in Model Garden's creation order, for the
    layers the model has (``model_layers``: its layer names)."""
    roles = backbone_roles(config)
    expected = {kind: [n for n in getattr(roles, kind) if n in model_layers] for kind in ("conv", "depthwise", "norm")}
    for block_fn, parts in BLOCK_PARTS.items():  # blocks are numbered per class: bottleneck_block_3, residual_block_3
        probe = next(iter(parts.values())) if block_fn == "mbconv" else "_conv1"
        expected[f"block:{block_fn}"] = [(name, fn) for name, fn in roles.block
                                         if fn == block_fn and name + probe in model_layers]
    return expected


def backbone_assignments(variables: dict, config, model_id: str, model_layers: set) -> list:
    """Every backbone variable of the checkpoint, placed on a kit layer. ``model_layers``: the
    layer names of the kit model; a block no endpoint depends on (SpineNet-49's level-2 output) is
    in neither functional model, so neither has its layers."""
    found, expected = backbone_layers(variables), expected_roles(config, model_layers)
    unknown = sorted(set(found) - set(expected))
    if unknown:
        raise ValueError(f"the checkpoint's backbone has {unknown[0]} layers, which {model_id} has not")
    assignments = []
    for kind, names in expected.items():
        layers = found.get(kind, [])
        if len(layers) != len(names):
            raise ValueError(f"the checkpoint's backbone has {len(layers)} {kind} layers where {model_id} has "
                             f"{len(names)}: it is not a Model Garden {model_id} "
                             f"(Model Garden id {MODEL_GARDEN_IDS.get(model_id, '?')})")
        for layer, name in zip(layers, names):
            if not kind.startswith("block"):
                for attribute, variable in layer.variables.items():
                    assignments.append(Assignment(variable, name, attribute, _describe(name)))
                continue
            block, block_fn = name
            parts = BLOCK_PARTS[block_fn]
            for path, variable in layer.variables.items():
                part, _, attribute = path.rpartition("/")
                if part not in parts:
                    raise ValueError(f"checkpoint variable {variable.key}: a {block_fn} block has no part {part!r}")
                assignments.append(Assignment(variable, block + parts[part], attribute, f"block {block} ({part})"))
    return assignments


def head_assignments(variables: dict, min_level: int, num_anchors: int) -> list:
    """Every head variable of the checkpoint (RetinaNetHead), placed on a kit layer."""
    assignments = []
    for key, variable in variables.items():
        if not key.startswith(HEAD):
            continue
        path = key[len(HEAD):].split("/")
        attribute, background = path[-1], 0
        subnet = re.match(r"^_(cls|box)_(convs|norms)$", path[0])
        if subnet and subnet.group(2) == "convs":  # _cls_convs/<conv index>/<attribute>
            base = f"{HEAD_SUBNETS[subnet.group(1)]}_net_conv{int(path[1])}"
        elif subnet:  # _cls_norms/<level index>/<conv index>/<attribute>
            level, conv = int(path[1]), int(path[2])
            base = f"{HEAD_SUBNETS[subnet.group(1)]}_net_conv{conv}_bn_p{min_level + level}"
        elif path[0] in HEAD_PREDICTORS and len(path) == 2:
            base = f"{HEAD_PREDICTORS[path[0]]}_predict"
            # the predictor's outputs (not its depthwise kernel's input channels) hold the background logit
            background = num_anchors if path[0] == "_classifier" and attribute != "depthwise_kernel" else 0
        else:
            continue  # reported as unused
        if attribute == "depthwise_kernel":
            layer, attribute = f"{base}_dw", "depthwise_kernel"
        elif attribute == "pointwise_kernel":
            layer, attribute = base, "kernel"
        else:
            layer = base
        assignments.append(Assignment(variable, layer, attribute, f"head {base}", background))
    return assignments


def head_shape(variables: dict, num_anchors: int) -> dict:
    """The head's width, conv type and class count (background excluded), read off the checkpoint."""
    def get(name):
        return variables.get(HEAD + name)

    conv = get("_cls_convs/0/pointwise_kernel") or get("_cls_convs/0/kernel")
    bias = get("_classifier/bias")
    if conv is None or bias is None:
        raise ValueError("the checkpoint has no RetinaNet head (model/_head/_cls_convs/0, model/_head/_classifier): "
                         "only Model Garden RetinaNet checkpoints can be imported")
    if bias.shape[0] % num_anchors:
        raise ValueError(f"model/_head/_classifier/bias has {bias.shape[0]} outputs, not a multiple of the "
                         f"{num_anchors} anchors per location")
    num_convs = len({k.split("/")[3] for k in variables if k.startswith(HEAD + "_cls_convs/")})
    return {"filters": int(conv.shape[-1]), "separable": conv.key.endswith("pointwise_kernel"),
            "num_classes": bias.shape[0] // num_anchors - 1, "num_convs": num_convs}


def drop_background(value: np.ndarray, num_anchors: int) -> np.ndarray:
    """Model Garden's class predictor gives ``num_anchors x (K + 1)`` outputs per location, class 0
    the background; the kit's gives ``num_anchors x K``, class ``k`` Model Garden's ``k + 1``."""
    width = value.shape[-1] // num_anchors
    keep = [a * width + c for a in range(num_anchors) for c in range(1, width)]
    return np.take(value, keep, axis=-1)


@dataclass(frozen=True)
class ImportOptions:
    checkpoint: str
    model: str
    out: str
    image_size: Optional[int] = None
    anchor_size: float = 3.0  # Model Garden's SpineNet(-Mobile) COCO configs: Anchor(anchor_size=3)
    activation: str = "swish"


def _unused_summary(variables: dict, used: set) -> dict:
    groups: dict = {}
    for key in variables:
        if key not in used:
            group = "/".join(key.split("/")[:2]) if key.startswith("model/") else key.split("/")[0]
            groups[group] = groups.get(group, 0) + 1
    return groups


def import_model_garden(options: ImportOptions, progress=print) -> dict:
    """Read a Model Garden RetinaNet checkpoint into a new run directory ``options.out``; returns
    its ``import.json`` record."""
    from mobile_spinenet.anchors import RetinaNetAnchors
    from mobile_spinenet.data.records import LabelMap
    from mobile_spinenet.registry import get_model_info
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.runs import Run, RunLock, build_kwargs_of, refuse_to_restart
    from mobile_spinenet.zoo import build_model

    info = get_model_info(options.model)
    if info.kind != "spinenet":
        raise ValueError(f"--model {options.model} is not a SpineNet id; Model Garden RetinaNet checkpoints import "
                         f"into {', '.join(sorted(MODEL_GARDEN_IDS))}")
    if os.path.exists(os.path.join(options.out, "config.yaml")):
        refuse_to_restart(options.out)
        raise ValueError(f"--out {options.out} holds a run already; choose a new folder")
    reader, variables = read_checkpoint(options.checkpoint)
    num_anchors = RetinaNetAnchors().num_anchors
    head = head_shape(variables, num_anchors)
    if head["separable"] != info.head_separable or head["num_convs"] != info.head_convs:
        raise ValueError(f"the checkpoint's head has {head['num_convs']} {'separable ' if head['separable'] else ''}"
                         f"convs, {options.model}'s {info.head_convs} {'separable ' if info.head_separable else ''}"
                         f"convs: it is not a Model Garden {options.model}")
    mobile = info.spinenet.family == "mbconv"
    overrides = {"image_size": options.image_size, "activation": options.activation,
                 "anchor_scale": options.anchor_size, "input_normalization": "imagenet",
                 "head_filters": head["filters"], "se_gate": "hard_sigmoid" if mobile else None, "clip_boxes": True}
    config = load_config(options.model, overrides=overrides)
    image_size = config.image_size
    progress(f"== building {options.model} at {image_size} px with Model Garden's head ({head['filters']} filters, "
             f"{head['num_classes']} classes) and options {', '.join(f'{k}={v}' for k, v in overrides.items() if v)}")
    model = build_model(options.model, **build_kwargs_of(config, image_size, head["num_classes"]))

    assignments = (backbone_assignments(variables, info.spinenet, options.model, {l.name for l in model.layers})
                   + head_assignments(variables, info.spinenet.min_level, num_anchors))
    targets = {}
    for assignment in assignments:
        try:
            layer = model.get_layer(assignment.layer)
        except ValueError:
            raise ValueError(f"checkpoint variable {assignment.variable.key} ({assignment.role}) has no place in "
                             f"{options.model}: the kit model has no layer {assignment.layer}") from None
        weight = getattr(layer, assignment.attribute, None)
        if weight is None:
            raise ValueError(f"checkpoint variable {assignment.variable.key}: kit layer {assignment.layer} has no "
                             f"{assignment.attribute}")
        shape = list(assignment.variable.shape)
        if assignment.drop_background:
            shape[-1] = shape[-1] // (head["num_classes"] + 1) * head["num_classes"]
        if tuple(shape) != tuple(weight.shape):
            raise ValueError(
                f"checkpoint variable {assignment.variable.key} ({assignment.variable.full_name}, {assignment.role}) "
                f"has shape {list(assignment.variable.shape)}, but {options.model}'s {assignment.layer}.{assignment.attribute} "
                f"is {list(weight.shape)}: the checkpoint is not a Model Garden {options.model} "
                f"(Model Garden ids: {', '.join(f'{k} = {v}' for k, v in MODEL_GARDEN_IDS.items())})")
        if id(weight) in targets:
            raise ValueError(f"checkpoint variables {targets[id(weight)][0].variable.key} and {assignment.variable.key} "
                             f"both map to {assignment.layer}.{assignment.attribute}")
        targets[id(weight)] = (assignment, weight)
    fixed = {id(w) for layer in model.layers if layer.name == "input_normalization" for w in layer.weights}
    missing = [w.name for w in model.weights if id(w) not in targets and id(w) not in fixed]
    if missing:
        raise ValueError(f"{len(missing)} weights of {options.model} have no checkpoint variable, first {missing[0]}")
    for assignment, weight in targets.values():
        value = reader.get_tensor(assignment.variable.key + SUFFIX)
        if assignment.drop_background:
            value = drop_background(value, assignment.drop_background)
        weight.assign(value)

    used = {a.variable.key for a in assignments}
    record = {"format": "model-garden-retinanet", "checkpoint": os.path.abspath(checkpoint_prefix(options.checkpoint)),
              "model_garden_id": MODEL_GARDEN_IDS.get(options.model), "variables_used": len(used),
              "variables_unused": _unused_summary(variables, used), "options": {k: v for k, v in overrides.items() if v},
              "background_class_dropped": True}
    label_map = LabelMap(list(range(1, head["num_classes"] + 1)), class_names(head["num_classes"]))
    with RunLock(options.out):
        run = Run.create(options.out, config, label_map, image_size, records={IMPORT_FILE: record})
        run.write_final(model, {"model": options.model, "imported": record})
    return record
