"""Parameter and multiply-add counts, taken from the graph rather than by hand formulas."""
from __future__ import annotations

from mobile_spinenet.backend import keras, tf


def count_params(model: keras.Model) -> int:
    """All weights, BN moving statistics included (what the paper's tables count)."""
    return int(model.count_params())


def inference_function(model: keras.Model):
    """The model's inference as a concrete function with a static ``[1, H, W, 3]`` input."""
    shape = [1, *model.input_shape[1:]]
    return tf.function(lambda image: model(image, training=False)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32, name="image"))


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one image: TF profiler float ops of the frozen graph, halved.

    This is how the public SpineNet implementation reports its counts, so the two are
    comparable (it also counts bias adds, BN-free adds and activations as float ops).
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(inference_function(model))
    graph = tf.Graph()
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns about its own API on every call
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=graph, cmd="op", options=options)
    logger.setLevel(level)
    return int(profile.total_float_ops) // 2


def count_mask_rcnn(model, proposals: int = 1000, detections: int = 100) -> dict:
    """Parameters and multiply-adds of one image through a :class:`~mobile_spinenet.rcnn.model.MaskRCNN`:
    the backbone and RPN on the image, the box head on ``proposals`` RoIs (Table 5: 1000) and the
    mask head on ``detections`` boxes. RoIAlign, proposal NMS and the detection NMS are not counted
    (the profiler counts no float ops for gathers and NMS)."""
    parts = {"pyramid": count_multiply_adds(model.pyramid),
             "box_head": proposals * count_multiply_adds(model.box_head),
             "mask_head": detections * count_multiply_adds(model.mask_head)}
    return {"params": count_params(model), "multiply_adds": sum(parts.values()), "parts": parts}
