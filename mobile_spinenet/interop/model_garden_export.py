"""A kit run written as a TF Model Garden RetinaNet checkpoint, the reverse of
:mod:`mobile_spinenet.interop.model_garden`: ``tf.train.Checkpoint(model=retinanet).read(CKPT)`` in
Model Garden restores it (its evaluation, its TPU training).

The head's object paths are structural (``_cls_convs/2``, ``_cls_norms/<level>/<conv>``). The
backbone's are positional in Model Garden (``layer_with_weights-N``, its Keras functional layer
order), so the kit reads them from ``model_garden_order.json``: for each backbone structure, the
object name of each layer in Model Garden's creation order, generated from Model Garden's own
builder by ``tests/make_model_garden_order.py`` and checked against it by the tests. Replaying the
creation order over the run's block spec (as the import does) names each layer's role."""
from __future__ import annotations

import json
import os

import numpy as np

from mobile_spinenet.interop.model_garden import (BACKBONE, BLOCK_PARTS, HEAD, MODEL_GARDEN_IDS, ORDER_FILE,
                                                  expected_roles, order_key)

SUMMARY_SUFFIX = ".model_garden.json"


def _attribute(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]


# Keras's class names, numbered in creation order, as Model Garden's variables are named
# (conv2d_12/kernel, inverted_bottleneck_block_3/conv2d/kernel): what the import reads back
CREATION_NAMES = {"conv": "conv2d", "depthwise": "depthwise_conv2d", "norm": "batch_normalization",
                  "block:mbconv": "inverted_bottleneck_block", "block:bottleneck": "bottleneck_block",
                  "block:residual": "residual_block"}


def _creation_name(kind: str, index: int) -> str:
    return CREATION_NAMES[kind] + (f"_{index}" if index else "")


def backbone_values(model, config, model_id: str, names: dict) -> dict:
    """``{checkpoint key: array}`` of the backbone; ``names`` gets each key's variable name."""
    key = order_key(config)
    with open(ORDER_FILE) as f:
        table = json.load(f)
    if key not in table:
        raise ValueError(f"{model_id}'s backbone ({key}) has no Model Garden layer order in {ORDER_FILE}; "
                         f"known: {', '.join(sorted(table))}")
    layers = {layer.name for layer in model.layers}
    values = {}
    for kind, roles in expected_roles(config, layers).items():
        objects = table[key].get(kind, [])
        if len(objects) != len(roles):
            raise ValueError(f"{model_id} has {len(roles)} {kind} layers where Model Garden's {key} backbone has "
                             f"{len(objects)}")
        for index, (number, name) in enumerate(zip(objects, roles)):
            object_name = f"layer_with_weights-{number}"
            parts = {f"{name[0]}{suffix}": part for part, suffix in BLOCK_PARTS[name[1]].items()} \
                if kind.startswith("block") else {name: ""}
            for layer_name, part in parts.items():
                if layer_name not in layers:  # e.g. a block without a projection shortcut
                    continue
                for weight in model.get_layer(layer_name).weights:
                    path = "/".join(p for p in (object_name, part, _attribute(weight)) if p)
                    values[BACKBONE + path] = weight.numpy()
                    inner = part.replace("_squeeze_excitation/", "squeeze_excitation/").lstrip("_")
                    names[BACKBONE + path] = "/".join(p for p in (_creation_name(kind, index), inner,
                                                                  _attribute(weight)) if p)
    return values


def with_background(value: np.ndarray, num_anchors: int, background: float) -> np.ndarray:
    """The kit's ``num_anchors x K`` class outputs as Model Garden's ``num_anchors x (K + 1)``, class
    0 (background, which Model Garden never scores) given ``background``."""
    classes = value.shape[-1] // num_anchors
    shape = value.shape[:-1] + (num_anchors, classes)
    grouped = value.reshape(shape)
    filler = np.full(value.shape[:-1] + (num_anchors, 1), background, value.dtype)
    return np.concatenate([filler, grouped], axis=-1).reshape(value.shape[:-1] + (num_anchors * (classes + 1),))


def head_values(model, info, head_filters, min_level: int, max_level: int, num_anchors: int) -> dict:
    """``{checkpoint key: array}`` of the RetinaNet head (Model Garden's ``RetinaNetHead``)."""
    values = {}
    for theirs, ours in (("cls", "classes"), ("box", "boxes")):
        convs = [(f"_{theirs}_convs/{i}", f"{ours}_net_conv{i}") for i in range(info.head_convs)]
        predictor = ("_classifier" if theirs == "cls" else "_box_regressor", f"{ours}_predict")
        for path, layer_name in convs + [predictor]:
            layer = model.get_layer(layer_name)
            if info.head_separable:
                values[f"{HEAD}{path}/depthwise_kernel"] = model.get_layer(f"{layer_name}_dw").depthwise_kernel.numpy()
                values[f"{HEAD}{path}/pointwise_kernel"] = layer.kernel.numpy()
            else:
                values[f"{HEAD}{path}/kernel"] = layer.kernel.numpy()
            values[f"{HEAD}{path}/bias"] = layer.bias.numpy()
        for i in range(info.head_convs):
            for index, level in enumerate(range(min_level, max_level + 1)):
                norm = model.get_layer(f"{ours}_net_conv{i}_bn_p{level}")
                for weight in norm.weights:
                    values[f"{HEAD}_{theirs}_norms/{index}/{i}/{_attribute(weight)}"] = weight.numpy()
    for name in (f"{HEAD}_classifier/pointwise_kernel", f"{HEAD}_classifier/kernel"):
        if name in values:
            values[name] = with_background(values[name], num_anchors, 0.0)
    from mobile_spinenet.heads import prior_bias
    values[f"{HEAD}_classifier/bias"] = with_background(values[f"{HEAD}_classifier/bias"], num_anchors, prior_bias())
    return values


def write_checkpoint(values: dict, prefix: str, names: dict) -> str:
    """A TF2 object-based checkpoint whose object graph is the keys' paths, each variable named
    ``names[key]`` (else its key)."""
    from mobile_spinenet.backend import tf

    tree: dict = {}
    for key, value in values.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = tf.Variable(value, name=names.get(key, key))

    def build(node):
        return tf.train.Checkpoint(**{name: build(child) if isinstance(child, dict) else child
                                      for name, child in node.items()})

    root = build(tree)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    return root.write(prefix)


def model_garden_settings(run, head_filters: int) -> tuple:
    """``(the Model Garden config values that rebuild the run's detector, what Model Garden computes
    differently from the run)``."""
    from mobile_spinenet.registry import get_model_info

    config, info = run.config, get_model_info(run.config.model)
    mobile = info.spinenet.family == "mbconv"
    settings = {"backbone": "spinenet_mobile" if mobile else "spinenet", "model_id": MODEL_GARDEN_IDS[config.model],
                "num_classes": run.num_classes + 1, "anchor_size": config.anchor_scale or 4.0,
                "num_scales": 3, "aspect_ratios": [0.5, 1.0, 2.0], "head_num_filters": head_filters,
                "head_num_convs": info.head_convs, "use_separable_conv": info.head_separable,
                "activation": config.activation or info.activation, "input_size": [run.image_size, run.image_size, 3],
                "class_ids": "Model Garden class k + 1 is the run's class k (label_map.json)"}
    differences = []
    if mobile and (config.se_gate or "sigmoid") != "hard_sigmoid":
        differences.append("Model Garden's SpineNet-Mobile gates squeeze-excite with a hard sigmoid, the run with a "
                           "sigmoid (train with se_gate: hard_sigmoid for an exact export)")
    if config.input_normalization != "imagenet":
        differences.append("Model Garden feeds (pixel - ImageNet mean) / ImageNet std, the run was trained on "
                           "(pixel - 127.5) / 127.5 (train with input_normalization: imagenet for an exact export)")
    if not config.clip_boxes:
        differences.append("Model Garden clips boxes to the image before NMS; the run's post-processing does not")
    return settings, differences


def export_model_garden(run_dir: str, out: str, progress=print) -> dict:
    """Write run ``run_dir`` as a Model Garden RetinaNet checkpoint at prefix ``out``; returns the
    summary written beside it (``OUT.model_garden.json``)."""
    from mobile_spinenet.anchors import RetinaNetAnchors
    from mobile_spinenet.io_utils import write_json_atomically
    from mobile_spinenet.registry import get_model_info
    from mobile_spinenet.training.runs import open_run

    run = open_run(run_dir)
    info = get_model_info(run.config.model)
    if run.config.model not in MODEL_GARDEN_IDS or run.config.task != "detection":
        raise ValueError(f"{run_dir} is a {run.config.model} {run.config.task} run; Model Garden RetinaNet checkpoints "
                         f"are written for SpineNet detectors: {', '.join(sorted(MODEL_GARDEN_IDS))}")
    if run.is_qat:
        raise ValueError(f"{run_dir} is a QAT run; write its float run (Model Garden's checkpoints are float)")
    if os.path.exists(out + ".index"):
        raise ValueError(f"{out}.index exists already; choose another --out")
    model = run.model()
    spinenet = info.spinenet
    head_filters = run.config.head_filters or info.head_filters
    names: dict = {}
    values = backbone_values(model, spinenet, run.config.model, names)
    values.update(head_values(model, info, head_filters, spinenet.min_level, spinenet.max_level,
                              RetinaNetAnchors().num_anchors))
    # every weight of the run is written once, plus Model Garden's background outputs; the input
    # normalisation layer is Model Garden's preprocessing, not a variable of its model
    fixed = sum(int(np.prod(w.shape)) for layer in model.layers if layer.name == "input_normalization"
                for w in layer.weights)
    predictor_inputs = int(np.prod(model.get_layer("classes_predict").kernel.shape[:-1]))
    written = sum(int(np.prod(v.shape)) for v in values.values())
    expected = model.count_params() - fixed + RetinaNetAnchors().num_anchors * (predictor_inputs + 1)
    if written != expected:
        raise ValueError(f"{written} values would be written for {run.config.model}'s {expected}: a layer of the "
                         f"run has no place in Model Garden's model")
    prefix = write_checkpoint(values, out, names)
    settings, differences = model_garden_settings(run, head_filters)
    summary = {"checkpoint": prefix, "run": os.path.abspath(run_dir), "variables": len(values),
               "model_garden_config": settings, "differences": differences}
    write_json_atomically(out + SUMMARY_SUFFIX, summary)
    progress(f"written: {prefix} ({len(values)} variables) and {out + SUMMARY_SUFFIX}")
    for difference in differences:
        progress(f"note: {difference}")
    return summary
