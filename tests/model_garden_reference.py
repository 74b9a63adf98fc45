"""TF Model Garden (``tf-models-official``, a test-only reference) without its package ``__init__``
chain: the ``official`` packages are made as empty modules that only know their folders, so
importing a leaf module (SpineNet-Mobile, the RetinaNet head, the detection generator) runs that
module and what it imports, not the heavy ``__init__`` files (orbit, tensorflow-text, ...)."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

import numpy as np

# kit id -> Model Garden's model_id (the SCALING_MAP keys of its SpineNet-Mobile and SpineNet)
MOBILE_IDS = {"spinenet49xxs": "49XS", "spinenet49xs": "49S", "spinenet49_mobile": "49"}
BOTTLENECK_IDS = {"spinenet49s": "49S", "spinenet49": "49", "spinenet96": "96", "spinenet143": "143", "spinenet190": "190"}
PACKAGES = ("official", "official.core", "official.modeling", "official.nlp", "official.vision",
            "official.vision.modeling", "official.vision.modeling.backbones", "official.vision.modeling.layers",
            "official.vision.modeling.heads", "official.vision.ops", "official.vision.utils",
            "official.vision.utils.object_detection", "official.vision.configs")


def _root():
    if "official" in sys.modules:
        return sys.modules["official"].__path__[0]
    spec = importlib.util.find_spec("official")
    return os.path.dirname(spec.origin) if spec else None


def available() -> bool:
    return _root() is not None


def _stub_packages() -> None:
    root = _root()
    for name in PACKAGES:
        if name in sys.modules:
            continue
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, *name.split(".")[1:])]
        sys.modules[name] = module
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
    # nn_blocks names two transformer classes of the NLP package in type hints only
    nlp_modeling = types.ModuleType("official.nlp.modeling")
    nlp_modeling.layers = types.SimpleNamespace(TransformerEncoderBlock=object, TransformerScaffold=object)
    sys.modules.setdefault("official.nlp.modeling", nlp_modeling)
    sys.modules["official.nlp"].modeling = sys.modules["official.nlp.modeling"]


def load(module: str):
    """A leaf module of Model Garden, e.g. ``official.vision.modeling.backbones.spinenet_mobile``."""
    _stub_packages()
    return importlib.import_module(module)


MAX_LOGIT = 8.0  # the reference heads' largest class logit


def _predictor_kernel(head, name: str):
    """The kernel of the head's ``name`` ("scores" or "boxes") predictor (pointwise when separable)."""
    return [v for v in head.trainable_variables if f"/{name}/" in v.name and "pointwise" in v.name
            or v.name.endswith(f"/{name}/kernel:0")][-1]


def retinanet(kit_id, seed=0, image_size=128, num_classes=91):
    """Model Garden's RetinaNet for ``kit_id`` as its COCO configs build it, with random weights
    whose outputs are O(1) and spread (at init the class logits all sit at the prior)."""
    from mobile_spinenet.backend import keras

    # Seeded, so the model is the same whatever ran before in this process: with random kernels,
    # about one draw in eight holds two boxes whose NMS order float rounding decides, and the kit
    # and Model Garden then keep different chains (a CI run met one).
    keras.utils.set_random_seed(seed)
    heads = load("official.vision.modeling.heads.dense_prediction_heads")
    retinanet_model = load("official.vision.modeling.retinanet_model")
    generator = load("official.vision.modeling.layers.detection_generator")
    spec = keras.layers.InputSpec(shape=[None, image_size, image_size, 3])
    if kit_id in MOBILE_IDS:
        mobile = load("official.vision.modeling.backbones.spinenet_mobile")
        scaling = mobile.SCALING_MAP[MOBILE_IDS[kit_id]]
        backbone = mobile.SpineNetMobile(
            input_specs=spec, min_level=3, max_level=7, endpoints_num_filters=scaling["endpoints_num_filters"],
            filter_size_scale=scaling["filter_size_scale"], block_repeats=scaling["block_repeats"], se_ratio=0.2,
            expand_ratio=6, activation="swish")
        head = heads.RetinaNetHead(min_level=3, max_level=7, num_classes=num_classes, num_anchors_per_location=9,
                                   num_filters=48, use_separable_conv=True, activation="swish")
    else:
        spinenet = load("official.vision.modeling.backbones.spinenet")
        scaling = spinenet.SCALING_MAP[BOTTLENECK_IDS[kit_id]]
        backbone = spinenet.SpineNet(
            input_specs=spec, min_level=3, max_level=7, endpoints_num_filters=scaling["endpoints_num_filters"],
            resample_alpha=scaling["resample_alpha"], block_repeats=scaling["block_repeats"],
            filter_size_scale=scaling["filter_size_scale"], activation="swish")
        head = heads.RetinaNetHead(min_level=3, max_level=7, num_classes=num_classes, num_anchors_per_location=9,
                                   num_filters=scaling["endpoints_num_filters"], activation="swish")
    model = retinanet_model.RetinaNetModel(backbone, None, head, generator.MultilevelDetectionGenerator(),
                                     min_level=3, max_level=7, num_scales=3, aspect_ratios=[0.5, 1.0, 2.0],
                                     anchor_size=3)
    rng = np.random.default_rng(seed)
    batch = rng.uniform(-2, 2, (4, image_size, image_size, 3)).astype("float32")
    model(batch, training=True)  # builds every layer
    norms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.gamma.assign(rng.uniform(0.8, 1.25, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.uniform(-0.2, 0.2, layer.beta.shape).astype("float32"))
        layer.momentum = 0.0  # one training pass sets the moving statistics to the batch's
    for variable in head.trainable_variables:
        if "scores" in variable.name or "boxes" in variable.name:  # the two predictors
            std = 0.5 if "kernel" in variable.name else 0.3
            variable.assign(rng.normal(0.0 if "kernel" in variable.name else -1.5 * ("scores" in variable.name),
                                       std, variable.shape).astype("float32"))
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.99
        layer.moving_variance.assign(layer.moving_variance + 0.05)
    # logits with a spread of about 2 and box codes of about 0.3 (SpineNet-49's wide features would
    # give logits of +-100, all scores 1.0, and detections ordered by ties)
    raw_scores, raw_boxes = head(backbone(batch, training=False), training=False)[:2]
    for outputs, name, target in ((raw_scores, "scores", 2.0), (raw_boxes, "boxes", 0.3)):
        spread = float(np.std(np.concatenate([v.numpy().ravel() for v in outputs.values()])))
        kernel = _predictor_kernel(head, name)
        kernel.assign(kernel * (target / spread))
    # SpineNet-49's heavy tail still reaches logits of 17 at that spread: hundreds of scores round to
    # 1.0 or tie in float32, and greedy NMS over tied scores keeps whichever box its sort puts first,
    # so two correct detectors disagree. Squeeze the top logit to at most 8 (score 0.9997).
    top = float(max(v.numpy().max() for v in head(backbone(batch, training=False), training=False)[0].values()))
    if top > MAX_LOGIT:
        kernel = _predictor_kernel(head, "scores")
        kernel.assign(kernel * (MAX_LOGIT / top))
    return model, backbone, head


def _all_layers(layer):
    yield from layer._flatten_layers(include_self=False, recursive=True)


def backbone_object_order(kit_id: str, image_size: int = 128) -> dict:
    """``{kind: [N of layer_with_weights-N, in creation order]}`` of Model Garden's backbone for
    ``kit_id``: the object names its checkpoints give each layer, which the kit's export writes."""
    import tempfile

    from mobile_spinenet.backend import tf
    from mobile_spinenet.interop.model_garden import backbone_layers, read_checkpoint

    model, _, _ = retinanet(kit_id, image_size=image_size)
    with tempfile.TemporaryDirectory() as folder:
        prefix = tf.train.Checkpoint(model=model).save(os.path.join(folder, "ckpt"))
        _, variables = read_checkpoint(prefix)
    return {kind: [int(layer.object_name.rpartition("-")[2]) for layer in layers]
            for kind, layers in sorted(backbone_layers(variables).items())}


def per_level_outputs(flat_logits, flat_codes, image_size: int, anchors_per_cell: int = 9, levels=range(3, 8)):
    """The kit's flat outputs (class logits ``[B, N, C]``, box codes ``[B, N, 4]``, anchors in level,
    row, column, anchor order) in Model Garden's per-level layout (``{level: [B, H, W, anchors * (1 + C)]}``,
    ``{level: [B, H, W, anchors * 4]}``), with the zero background logit put back that Model Garden's
    detection generator drops, so that generator decodes the kit's outputs."""
    from mobile_spinenet.backend import tf

    logits, codes = np.asarray(flat_logits, np.float32), np.asarray(flat_codes, np.float32)
    logits = np.concatenate([np.zeros_like(logits[..., :1]), logits], axis=-1)
    scores, boxes, start = {}, {}, 0
    for level in levels:
        side = image_size // 2 ** level
        count = side * side * anchors_per_cell
        scores[str(level)] = tf.constant(logits[:, start:start + count].reshape(len(logits), side, side, -1))
        boxes[str(level)] = tf.constant(codes[:, start:start + count].reshape(len(codes), side, side, -1))
        start += count
    assert start == logits.shape[1], (start, logits.shape)  # every anchor placed, none left over
    return scores, boxes


def assert_same_detections(classes, scores, boxes, theirs_classes, theirs_scores, theirs_boxes, box_atol):
    """The same detections up to the order of equal scores (which float rounding in a sum of
    products can flip between runs): every one of Model Garden's has a kit detection of the same
    class with the same score and box, each used once. ``classes`` are the kit's (no background)."""
    classes, scores, boxes = np.asarray(classes), np.asarray(scores), np.asarray(boxes)
    theirs_classes, theirs_scores, theirs_boxes = (np.asarray(theirs_classes), np.asarray(theirs_scores),
                                                   np.asarray(theirs_boxes))
    assert len(classes) == len(theirs_classes)
    np.testing.assert_allclose(np.sort(scores), np.sort(theirs_scores), atol=1e-5)  # the same scores, in order
    used = np.zeros(len(classes), bool)
    for cls, score, box in zip(theirs_classes, theirs_scores, theirs_boxes):
        match = np.flatnonzero(~used & (classes + 1 == cls) & (np.abs(scores - score) <= 1e-5)
                               & (np.abs(boxes - box).max(axis=1) <= box_atol + 1e-3 * np.abs(box).max()))
        assert len(match), f"Model Garden's detection (class {cls}, score {score:.6f}, box {box}) has no kit twin"
        used[match[0]] = True
