"""Quantization-aware models with tensorflow-model-optimization.

tfmot's default 8-bit scheme covers the convolutions (BN folded), ReLU/swish/sigmoid
activations, Add, Concatenate, pooling, nearest upsampling and Reshape. It refuses a few
layers the kit uses; those get :class:`OutputOnlyQuantizeConfig` (an 8-bit moving-average
quantizer on the output, no weights), so the whole graph converts to int8:

* ``Multiply`` (every squeeze-excite), ``Average`` (the classification head);
* the kit's ``HardSwish`` / ``HardSigmoid`` / ``StochasticDepth`` / ``DropBlock`` layers
  (``HardSigmoid`` and ``HardSwish`` also fake-quantize their inner relu6(x + 3) on [0, 6], and
  ``HardSwish`` its gate on [0, 1], so they convert to int8 ADD and MUL: XNNPACK takes those,
  not int8 HARD_SWISH).

Every ``Add`` the builders make has two inputs: a three-input Add converts to two ADDs whose
partial sum has no quantizer and stays float.

The RetinaNet head shares its convolutions across P3..P7 with a BN per level. tfmot folds BN
into a conv (and splits a separable conv) only when the layer is used once, so models are
quantized in their *quantizable* form (:func:`quantizable_model`): the same weights with the
head unrolled per level.

The public implementation's QAT path had defects this module avoids (see the tests):
its quantized hard-sigmoid scaled by 1.6667 instead of 1/6 (here the float layer itself is
kept and only its output is quantized); it copied weights into the QAT model by position,
which fails when the float model was never called (here the QAT model is cloned around the
float model's own layers, and :func:`copy_weights_by_name` matches layers by name); and it could not quantize the bottleneck
family at all (here every layer of both families is covered).
"""
from __future__ import annotations

import contextlib
import fnmatch
import re
from typing import Sequence

import numpy as np

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.layers import CUSTOM_OBJECTS, DropBlock, HardActivation, StochasticDepth

import tensorflow_model_optimization as tfmot  # noqa: E402  (after the backend sets legacy Keras)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (  # noqa: E402,E501
    Default8BitConvQuantizeConfig)

_quantize = tfmot.quantization.keras


class OutputOnlyQuantizeConfig(_quantize.QuantizeConfig):
    """Quantize only a layer's output (8 bits, asymmetric, moving-average range)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_quantize.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                             narrow_range=False)]

    def get_config(self):
        return {}


# Layer classes tfmot's default registry refuses; their outputs are quantized as above.
OUTPUT_ONLY_LAYERS = (keras.layers.Multiply, keras.layers.Average) + tuple(CUSTOM_OBJECTS.values())


def quantize_scope_objects() -> dict:
    """Custom objects needed to clone, save or load a quantization-aware model."""
    return {**CUSTOM_OBJECTS, "OutputOnlyQuantizeConfig": OutputOnlyQuantizeConfig,
            "Default8BitConvQuantizeConfig": Default8BitConvQuantizeConfig}


def _feeds_output_concat(layer) -> bool:
    """A predictor: a conv whose outputs are reshaped and concatenated into a model output."""
    return any(isinstance(node.outbound_layer, keras.layers.Reshape) for node in layer.outbound_nodes)


def _annotate(layer):
    """``layer`` annotated for quantization: with the QuantizeConfig it needs beyond tfmot's
    defaults, else with none (tfmot's registry chooses), as ``quantize_annotate_model`` would."""
    if isinstance(layer, HardActivation) and not layer.quantize_inner:  # a copy: the float model stays float
        layer = type(layer).from_config({**layer.get_config(), "quantize_inner": True})
    if isinstance(layer, OUTPUT_ONLY_LAYERS):
        return _quantize.quantize_annotate_layer(layer, OutputOnlyQuantizeConfig())
    if type(layer) is keras.layers.Conv2D and _feeds_output_concat(layer):
        # int8 concatenation needs one scale for all its inputs: the predictors' outputs are left
        # to the Concatenate's quantizer, which the converter propagates back through Reshape.
        return _quantize.quantize_annotate_layer(layer, Default8BitConvQuantizeConfig(["kernel"], [], False))
    return _quantize.quantize_annotate_layer(layer)


def float_layer_names(model: keras.Model, patterns: Sequence[str]) -> set:
    """The layers of ``model`` whose names match one of the shell-style ``patterns`` (``stem*``,
    ``block*_fuse*``); a pattern that matches no layer is an error that names it."""
    names = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    chosen = set()
    for pattern in patterns:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ValueError(f"--float-layers: {pattern!r} matches no layer of {model.name} "
                             f"(its layers are named like {', '.join(names[:3])}, ..., {names[-1]})")
        chosen.update(matched)
    return chosen


def check_float_layers(model_id: str, patterns: Sequence[str], **build_kwargs) -> set:
    """:func:`float_layer_names` of the quantizable form of ``model_id`` built with ``build_kwargs``
    (untrained: names only), so that a pattern matching no layer is refused before any work."""
    from mobile_spinenet.zoo import build_model

    return float_layer_names(build_model(model_id, share_head_convs=False, **build_kwargs), patterns)


def quantize_aware(model: keras.Model, float_layers: Sequence[str] = ()) -> keras.Model:
    """A quantization-aware copy of a float functional ``model``, its weights included.

    Works for every model of the zoo in its quantizable form (a layer shared between several
    inputs is refused); the float model need not have been called. The layers matching
    ``float_layers`` (:func:`float_layer_names`) are left float: the converter keeps them float
    and quantizes their outputs where int8 layers take them (mixed precision; float kernels may be
    slower than int8 ones on a phone)."""
    shared = [layer.name for layer in model.layers if len(layer.inbound_nodes) > 1]
    if shared:
        raise ValueError(f"{model.name} shares layers between inputs ({', '.join(shared[:3])}, ...): "
                         f"quantize its quantizable_model(...) instead")
    keep_float = float_layer_names(model, float_layers)

    def annotate(layer):
        return layer if layer.name in keep_float else _annotate(layer)

    with _quantize.quantize_scope(quantize_scope_objects()):
        # _annotate wraps the model's own layer objects, so the clone holds the very weights of
        # ``model``: nothing is copied by position. One clone annotates every layer (tfmot's
        # quantize_annotate_model would clone the model once more to annotate the rest).
        annotated = keras.models.clone_model(model, clone_function=annotate)
        with _input_quantizers_named_from_zero():
            return _quantize.quantize_apply(annotated)


@contextlib.contextmanager
def _input_quantizers_named_from_zero():
    """tfmot's input quantizers named as in the first model a process builds (``quantize_layer``).

    They take Keras's per-process counter (``quantize_layer``, then ``quantize_layer_1`` in the next
    model), and the name reaches the tensor names of a converted file: two int8 exports of one run
    in one process differed in those bytes. The counter starts from zero inside and is restored
    after, so no name outside changes; the names are given at construction, as Keras gives them."""
    from tf_keras.src import backend as keras_backend

    counters = keras_backend.get_default_graph_uid_map()
    key = ("", "quantize_layer")
    saved = counters.get(key)
    counters[key] = 0
    try:
        yield
    finally:
        if saved is None:
            counters.pop(key, None)
        else:
            counters[key] = saved


def qat_model_structure(qat_model: keras.Model) -> dict:
    """The Keras config of a quantization-aware model (no weights): :func:`qat_model_from_structure`
    rebuilds the same layers, names and weight order from it."""
    import json

    return json.loads(qat_model.to_json())


def qat_model_from_structure(structure: dict) -> keras.Model:
    """The quantization-aware model described by ``structure`` (:func:`qat_model_structure`),
    untrained: one deserialisation, where :func:`quantize_aware` clones the float model four times
    and runs tfmot's layout transforms. Its weights files and the tfmot-built model's are the same."""
    import json

    with _quantize.quantize_scope(quantize_scope_objects()), \
            keras.utils.custom_object_scope({"QuantizeWrapperV2": QuantizeWrapperV2}):  # the inner scope wins
        return keras.models.model_from_json(json.dumps(_without_build_configs(structure)))


class QuantizeWrapperV2(_quantize.QuantizeWrapperV2):
    """tfmot's ``QuantizeWrapperV2``, built as ``quantize_apply`` builds it: around a built layer.

    tfmot's ``build`` lists the wrapped layer's trainable weights as its own (and the quantized
    kernel once more). A deserialised wrapper would build its layer only afterwards, list fewer
    weights, and a weights file written by the tfmot-built model would not load (it is read per
    layer, entry by entry). The class keeps tfmot's name: weights files key layers by it."""

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        super().build(input_shape)


def _without_build_configs(structure: dict) -> dict:
    """``structure`` without its layers' ``build_config``. With it, Keras builds every layer
    outside its name scope before connecting it, and tfmot's ``QuantizeLayer`` (whose build does
    not mark it built) is built a second time when called: two more range weights than the
    trained model has, so its weights no longer load in order. Without it, each layer builds
    when called, as in the model that was saved."""
    layers = [{key: value for key, value in layer.items() if key != "build_config"}
              for layer in structure["config"]["layers"]]
    return {**structure, "config": {**structure["config"], "layers": layers}}


# -- from a trained float model to a quantizable one ---------------------------------------------
def copy_weights_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copy every layer's weights from ``source`` into the layer of the same name in ``target``;
    a target layer named with a level (``..._p3...``, a head conv unrolled per level) takes the
    weights of the shared layer without it.
    Never by position. Raises when a target layer with weights finds no source."""
    by_name = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        name = layer.name
        origin = by_name.get(name) or by_name.get(re.sub(r"_p\d+(?=_|$)", "", name))
        if origin is None:
            raise ValueError(f"layer {name} of {target.name} has no counterpart in {source.name}")
        layer.set_weights(origin.get_weights())
        copied += 1
    return copied


def quantizable_model(model_id: str, float_model: keras.Model, **build_kwargs) -> keras.Model:
    """``float_model`` rebuilt for int8: the same weights, the head convs unrolled per level so
    BN folds into them (see :func:`mobile_spinenet.heads.retinanet_head`)."""
    from mobile_spinenet.zoo import build_model

    unrolled = build_model(model_id, share_head_convs=False, **build_kwargs)
    copy_weights_by_name(float_model, unrolled)
    return unrolled


def quantization_aware_copy(model_id: str, float_model: keras.Model, freeze_bn: bool = False,
                            float_layers: Sequence[str] = (), **build_kwargs) -> keras.Model:
    """The quantization-aware model of trained ``float_model``: its quantizable form, BN layers
    frozen first when ``freeze_bn`` (:func:`freeze_batch_norm`), annotated but for the layers
    matching ``float_layers``. Its ranges are tfmot's initial ones until :func:`calibrate_ranges`."""
    unrolled = quantizable_model(model_id, float_model, **build_kwargs)
    if freeze_bn:
        freeze_batch_norm(unrolled)
    return quantize_aware(unrolled, float_layers)


def freeze_batch_norm(model: keras.Model) -> int:
    """Freeze every BN layer of float ``model`` before :func:`quantize_aware`, for a fine-tune that
    keeps them as trained: Keras runs a BN layer that is not trainable in inference mode, also
    under ``training=True``, so it normalises with its moving statistics and leaves them, its scale
    and its offset alone; the quantizer ranges still follow the data. Done before the quantization
    wrappers exist, because tfmot's wrapper takes its layer's trainable and other weights when it
    is built, and the saved model structure must say the same. Returns the layers frozen."""
    from mobile_spinenet.training.precise_bn import batch_norm_layers

    layers = batch_norm_layers(model)
    for layer in layers:
        layer.trainable = False
    return len(layers)


# -- quantizer ranges ------------------------------------------------------------------------
class _ExactRanges:
    """Within the block, tfmot's moving-average range updates are exact: a range takes the min of
    its min and the batch's, the max of its max and the batch's (from [0, 0]: the batch's own range,
    which :func:`calibrate_ranges` reads after each batch)."""

    def __init__(self):
        self._train, self._original = tf.__internal__.train, tf.__internal__.train.assign_moving_average

    def __enter__(self):
        def assign_union(variable, value, decay, zero_debias=True, name=None):
            if name == "AssignMinEma":
                return variable.assign(tf.minimum(variable, value))
            if name == "AssignMaxEma":
                return variable.assign(tf.maximum(variable, value))
            return self._original(variable, value, decay, zero_debias=zero_debias, name=name)
        self._train.assign_moving_average = assign_union
        return self

    def __exit__(self, *exc):
        self._train.assign_moving_average = self._original


# The attribute that makes each random layer an identity, and its value then.
_RANDOM_LAYER_OFF = ((keras.layers.Dropout, "rate", 0.0), (StochasticDepth, "rate", 0.0), (DropBlock, "keep_prob", 1.0))


class _RandomLayersOff:
    """Within the block, the dropout, stochastic-depth and DropBlock layers of ``model`` (wrapped
    or not) pass their inputs through under ``training=True`` too, so that a calibration batch
    sees the activations inference will see (dropout would scale every kept one by 1/(1-rate))."""

    def __init__(self, model: keras.Model):
        self._saved = []
        for layer in model.layers:
            inner = getattr(layer, "layer", layer)  # tfmot's QuantizeWrapper holds its layer
            for cls, attribute, off in _RANDOM_LAYER_OFF:
                if isinstance(inner, cls):
                    self._saved.append((inner, attribute, getattr(inner, attribute), off))

    def __enter__(self):
        for layer, attribute, _, off in self._saved:
            setattr(layer, attribute, off)
        return self

    def __exit__(self, *exc):
        for layer, attribute, value, _ in self._saved:
            setattr(layer, attribute, value)


def calibrate_ranges(qat_model: keras.Model, batches) -> int:
    """Set every quantizer range to the median, over ``batches``, of each batch's own range (its
    min and its max, each holding 0), and leave the BN statistics as they were.

    tfmot starts activation ranges at [-6, 6] and moves them with an EMA of decay 0.999, i.e.
    over ~1000 steps: a short fine-tune would end with ranges far from the data (the int8 model
    then clips or wastes levels). The median of batch ranges, like tfmot's average of them,
    ignores the one batch with an outlier that a union (TFLite's post-training calibration)
    stretches every range to: on the demo SpineNet-49xxs, before any fine-tune, the union over 256
    images cost 1.3-1.9 AP against float and the median 0.1 (docs/quantization.md). The batches run
    eagerly in training mode (weight ranges follow the weights), which would move every BN moving
    statistic by a momentum step per batch towards that batch's statistics; they are put back.
    Dropout, stochastic depth and DropBlock are switched off meanwhile (:class:`_RandomLayersOff`).
    Returns the batches used."""
    from mobile_spinenet.training.precise_bn import batch_norm_layers

    ranges = [v for v in qat_model.non_trainable_variables if re.search(r"_(min|max):0$", v.name)]
    bn_layers = batch_norm_layers(qat_model)
    bn_statistics = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in bn_layers]
    per_batch = []
    with _ExactRanges(), _RandomLayersOff(qat_model):
        for images in batches:
            for variable in ranges:  # each batch's own range, which must hold 0: start from [0, 0]
                variable.assign(tf.zeros_like(variable))
            qat_model(images, training=True)
            per_batch.append([variable.numpy() for variable in ranges])
    if not per_batch:
        raise ValueError("range calibration needs at least one batch")
    for index, variable in enumerate(ranges):
        variable.assign(np.median(np.stack([values[index] for values in per_batch]), axis=0))
    for layer, (mean, variance) in zip(bn_layers, bn_statistics):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
    return len(per_batch)
