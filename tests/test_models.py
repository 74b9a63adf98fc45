import numpy as np
import pytest

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.counting import count_multiply_adds, count_params
from mobile_spinenet.heads import BOX_OUTPUT, CLASS_OUTPUT
from mobile_spinenet.paper import TABLE_9, TOLERANCE
from mobile_spinenet.zoo import MODELS, build_backbone, build_model, get_model_info, model_anchors

# SpineNet-96/143/190 are SpineNet-49's builder with more repeats and width (their counts are
# checked by test_paper_counts_slow): building them takes 6-11 s each, so they run with -m slow
LARGE_IDS = {"spinenet96", "spinenet143", "spinenet190"}


def _ids(ids):
    return [pytest.param(m, marks=pytest.mark.slow) if m in LARGE_IDS else m for m in ids]


PYRAMID_IDS = _ids(m for m, info in MODELS.items() if info.kind in ("spinenet", "resnet_fpn"))
DETECTOR_IDS = _ids(MODELS)


@pytest.mark.parametrize("model_id", PYRAMID_IDS)
def test_pyramid_shapes_per_level(model_id):
    size = 128
    model = build_backbone(model_id, image_size=size)
    info = get_model_info(model_id)
    width = info.spinenet.endpoint_filters if info.spinenet else 256
    shapes = {name: tuple(t.shape[1:]) for name, t in model.output.items()}
    assert shapes == {f"p{lvl}": (size >> lvl, size >> lvl, width) for lvl in range(3, 8)}


@pytest.mark.parametrize("model_id", DETECTOR_IDS)
def test_detector_outputs_cover_every_anchor(model_id):
    size = 128
    model = build_model(model_id, image_size=size, num_classes=7)
    anchors = model_anchors(model_id, size)
    assert tuple(model.output[CLASS_OUTPUT].shape[1:]) == (len(anchors), 7)
    assert tuple(model.output[BOX_OUTPUT].shape[1:]) == (len(anchors), 4)


@pytest.mark.parametrize("row", TABLE_9, ids=lambda r: r.model_id)
def test_table9_params_and_multiply_adds(row):
    model = build_model(row.model_id, image_size=row.image_size, num_classes=80, batch_size=1)
    params_m = count_params(model) / 1e6
    macs_b = count_multiply_adds(model) / 1e9
    assert abs(params_m / row.params_m - 1) <= TOLERANCE, (params_m, row.params_m)
    assert abs(macs_b / row.multiply_adds_b - 1) <= TOLERANCE, (macs_b, row.multiply_adds_b)


def test_multiply_adds_scale_with_input_area():
    small = count_multiply_adds(build_model("spinenet49xxs", image_size=128, batch_size=1))
    large = count_multiply_adds(build_model("spinenet49xxs", image_size=256, batch_size=1))
    assert 3.6 < large / small < 4.1


def test_classifier_at_224_averages_the_pyramid():
    model = build_model("spinenet49", "classification", image_size=224, num_classes=1000)
    assert tuple(model.output.shape) == (None, 1000)
    assert model.get_layer("cls_up_p7_crop").output.shape[1] == 28  # 2 -> 32 -> cropped to P3's 28


def test_keras_save_load_round_trip(tmp_path, images):
    model = build_model("spinenet49xxs", image_size=128, num_classes=3)
    x = images(128, batch=2)
    before = model(x, training=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    after = loaded(x, training=False)
    for name in (CLASS_OUTPUT, BOX_OUTPUT):
        np.testing.assert_array_equal(before[name].numpy(), after[name].numpy())


def test_forward_backward_step_updates_every_weight(images):
    model = build_model("spinenet49xxs", image_size=128, num_classes=3)
    x = images(128, batch=2)
    optimizer = keras.optimizers.SGD(0.01)
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_mean(tf.square(out[CLASS_OUTPUT])) + tf.reduce_mean(tf.square(out[BOX_OUTPUT]))
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.name for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not missing
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    assert changed > 0.9 * len(before)


def test_class_bias_starts_at_prior_probability(images):
    model = build_model("spinenet49xxs", image_size=128, num_classes=3)
    probs = tf.sigmoid(model(images(128), training=True)[CLASS_OUTPUT]).numpy()
    assert 0.003 < probs.mean() < 0.03


def test_unknown_id_and_bad_size_are_named():
    with pytest.raises(ValueError, match="unknown model id 'spinenet50'.*spinenet49xxs"):
        build_model("spinenet50")
    with pytest.raises(ValueError, match="image size 200 for spinenet49 must be a positive multiple of 128"):
        build_model("spinenet49", image_size=200)


def test_an_option_a_family_ignores_is_refused_not_dropped():
    from mobile_spinenet.registry import family_of
    from mobile_spinenet.training.config import load_config

    with pytest.raises(ValueError, match=r"mnv3_small_ssdlite \(MobileNetV3-SSDLite\) does not take activation "
                                         r"'relu6': MobileNetV3 fixes each block's activation"):
        build_model("mnv3_small_ssdlite", image_size=128, num_classes=3, activation="relu6")
    with pytest.raises(ValueError, match="does not take activation 'relu6'"):  # before TensorFlow builds anything
        load_config("mnv3_large_ssdlite", overrides={"activation": "relu6"})
    with pytest.raises(ValueError, match=r"resnet50_fpn \(ResNet-FPN\) does not take spec"):
        build_model("resnet50_fpn", image_size=128, spec="hourglass")
    with pytest.raises(ValueError, match="does not take stochastic depth 0.2"):
        build_model("resnet50_fpn", image_size=128, stochastic_depth=0.2)
    # what a family does take changes its graph
    swish = build_model("spinenet49xxs", image_size=128, num_classes=3)
    relu6 = build_model("spinenet49xxs", image_size=128, num_classes=3, activation="relu6")
    kinds = lambda m: sorted({type(layer).__name__ + getattr(getattr(layer, "activation", None), "__name__", "")
                              for layer in m.layers})  # noqa: E731
    assert kinds(swish) != kinds(relu6) and swish.count_params() == relu6.count_params()
    assert family_of("mnv3_small_ssdlite").display == "MobileNetV3-SSDLite"
    assert family_of("resnet50_fpn").display == "ResNet-FPN"  # the report no longer plots it as SpineNet


def _layer_histogram(model):
    from collections import Counter
    return Counter(type(layer).__name__ for layer in model.layers)


def test_latency_options_change_the_graph_as_they_say_and_none_keeps_the_papers():
    from mobile_spinenet.specs import make_divisible

    kwargs = {"image_size": 128, "num_classes": 3}
    paper = build_model("spinenet49xxs", **kwargs)
    unset = build_model("spinenet49xxs", channel_divisor=None, se_ratio=None, **kwargs)
    assert count_params(unset) == count_params(paper) and _layer_histogram(unset) == _layer_histogram(paper)
    histogram = _layer_histogram(paper)

    no_se = build_model("spinenet49xxs", se_ratio=0.0, **kwargs)
    without = _layer_histogram(no_se)
    assert histogram["GlobalAveragePooling2D"] > 0 and without["GlobalAveragePooling2D"] == 0  # every SE gone
    assert count_params(no_se) < count_params(paper)

    rounded = build_model("spinenet49xxs", channel_divisor=8, **kwargs)
    def conv_widths(model):  # the backbone's and head's convs; the predictors' widths are anchors x classes
        return {layer.filters for layer in model.layers
                if type(layer).__name__ == "Conv2D" and not layer.name.endswith("_predict")}

    widths, paper_widths = conv_widths(rounded), conv_widths(paper)
    assert any(w % 8 for w in paper_widths)  # the paper's int(width * 0.6): 9, 14, 67 ...
    assert all(w % 8 == 0 for w in widths), sorted(widths)  # squeeze-excite reductions too
    assert make_divisible(67, 8) in widths and _layer_histogram(rounded) == histogram  # same layers, other widths


def test_latency_options_are_refused_where_the_builder_has_no_such_thing():
    with pytest.raises(ValueError, match="does not take channel divisor"):
        build_model("mnv3_small_ssdlite", image_size=128, num_classes=3, channel_divisor=8)
    with pytest.raises(ValueError, match="does not take se ratio"):
        build_model("mnv3_small_ssdlite", image_size=128, num_classes=3, se_ratio=0.0)  # 0 is a setting too
    with pytest.raises(ValueError, match="bottleneck blocks"):
        build_model("spinenet49s", image_size=128, num_classes=3, se_ratio=0.0)
    with pytest.raises(ValueError, match="channel_divisor must be a positive integer"):
        build_model("spinenet49xxs", image_size=128, num_classes=3, channel_divisor=0)
    # 0 is a setting for every option whose default is None: it was taken for "unset" and ignored
    with pytest.raises(ValueError, match="resnet50_fpn .* does not take channel divisor 0"):
        build_model("resnet50_fpn", image_size=128, num_classes=3, channel_divisor=0)
    with pytest.raises(ValueError, match="does not take head filters 0"):
        build_model("mnv3_small_ssdlite", image_size=128, num_classes=3, head_filters=0)
