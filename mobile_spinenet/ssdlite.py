"""SSDLite detector on a MobileNetV3 backbone (the paper's Table 9 baselines)."""
from __future__ import annotations

from mobile_spinenet.anchors import SSDAnchors
from mobile_spinenet.backend import keras
from mobile_spinenet.blocks import Ops
from mobile_spinenet.heads import BOX_OUTPUT, CLASS_OUTPUT, flatten_predictions, head_initializer, prior_bias
from mobile_spinenet.mobilenet_v3 import mobilenet_v3

EXTRA_DEPTHS = (512, 256, 256, 128)


def ssd_feature_sizes(image_size: int, num_maps: int = 6) -> tuple[int, ...]:
    """Feature-map sides from stride 16 on, halving with SAME padding (20, 10, 5, 3, 2, 1 at 320)."""
    sizes = [-(-image_size // 16)]
    while len(sizes) < num_maps:
        sizes.append(-(-sizes[-1] // 2))
    return tuple(sizes)


def maps_grown_from_one_pixel(trained_size: int, image_size: int) -> list[int]:
    """Indices of the feature maps that are 1x1 at ``trained_size`` but larger at ``image_size``.
    The 3x3 depthwise kernels reading a 1x1 map (its predictors, the next extra layer) see only zero
    padding around their centre tap, so training leaves their other eight taps at their initial
    values; on a larger map those taps meet real features and the predictions go wrong."""
    return [i for i, (trained, now) in enumerate(zip(ssd_feature_sizes(trained_size), ssd_feature_sizes(image_size)))
            if trained == 1 and now > 1]


def _extra_layer(x, ops: Ops, depth: int, name: str):
    """1x1 to depth/2, stride-2 3x3 depthwise, 1x1 to depth; BN + ReLU6 after each."""
    x = ops.conv_bn(x, depth // 2, 1, name=f"{name}_reduce")
    x = ops.depthwise_bn(x, 3, strides=2, name=f"{name}_dw")
    return ops.conv_bn(x, depth, 1, name=f"{name}_expand")


def _separable_predictor(x, ops: Ops, units: int, name: str, bias_initializer="zeros"):
    x = ops.depthwise_bn(x, 3, name=f"{name}_dw")
    return keras.layers.Conv2D(units, 1, kernel_initializer=head_initializer(), bias_initializer=bias_initializer,
                               name=f"{name}_pw")(x)


def ssdlite(inputs, ops: Ops, size: str, num_classes: int, prior_probability: float = 0.01):
    """MobileNetV3-SSDLite: C4, C5 and four extra maps, each with its own separable
    class and box predictors. Returns ``(class_logits, box_codes)``; the anchors they are
    decoded against are ``zoo.model_anchors`` (one place computes them)."""
    c4, c5 = mobilenet_v3(inputs, ops, size, detection=True)
    extra_ops = ops.with_activation("relu6")
    maps = [c4, c5]
    for i, depth in enumerate(EXTRA_DEPTHS):
        maps.append(_extra_layer(maps[-1], extra_ops, depth, name=f"ssd_extra{i}"))
    per_location = SSDAnchors(tuple(int(m.shape[1]) for m in maps)).anchors_per_location()
    class_maps, box_maps = [], []
    for i, (feature, count) in enumerate(zip(maps, per_location)):
        class_maps.append(_separable_predictor(feature, extra_ops, count * num_classes, f"ssd_class{i}",
                                               keras.initializers.Constant(prior_bias(prior_probability))))
        box_maps.append(_separable_predictor(feature, extra_ops, count * 4, f"ssd_box{i}"))
    classes = flatten_predictions(class_maps, num_classes, CLASS_OUTPUT)
    boxes = flatten_predictions(box_maps, 4, BOX_OUTPUT)
    return classes, boxes
