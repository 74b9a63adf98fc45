"""Precise BN (as Detectron2 and pycls do): recompute BN population statistics as the plain
average of batch statistics over a few hundred training images with the final weights.

BN momentum 0.99 makes the moving averages remember ~100 steps: right for the paper's long
schedules, but after a short run they still carry the initial statistics and the weights of
many steps ago, and inference with them can lose most of the AP the batch statistics give."""
from __future__ import annotations

from mobile_spinenet.backend import keras


def batch_norm_layers(model) -> list:
    """Every BN layer of ``model``, nested models and quantization wrappers included."""
    found = []
    for layer in model.layers:
        layer = getattr(layer, "layer", layer)  # tfmot's QuantizeWrapper holds the real layer
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
    return found


def recompute_bn_statistics(model, image_batches) -> int:
    """Set every BN layer's moving mean/variance to the average of its batch statistics over
    ``image_batches`` (preprocessed, un-augmented training images, e.g. a task's
    ``bn_image_batches``). Returns the number of batches used."""
    layers = batch_norm_layers(model)
    saved = [layer.momentum for layer in layers]
    batches = 0
    try:
        for images in image_batches:
            for layer in layers:  # cumulative average: new = old * k/(k+1) + batch / (k+1)
                layer.momentum = batches / (batches + 1.0)
            model(images, training=True)
            batches += 1
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return batches
