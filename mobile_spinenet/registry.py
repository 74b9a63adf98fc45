"""Every model id the kit builds, as data, with no TensorFlow import: listing ids, checking an
id or an input size and validating a recipe stay instant. :mod:`mobile_spinenet.zoo` builds them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mobile_spinenet.specs import SPINENET_MOBILE_49, SpineNetConfig

INSTANCE_SEGMENTATION = "instance-segmentation"  # Mask R-CNN
TASKS = ("detection", "classification", INSTANCE_SEGMENTATION)
# Build options every family honours: batch norm and DropBlock are made by the shared ``Ops``.
COMMON_OPTIONS = frozenset({"sync_bn", "bn_momentum", "dropblock_keep_prob"})
OPTION_DEFAULTS = {"stochastic_depth": 0.0}  # build options whose default is a number, not None


@dataclass(frozen=True)
class Family:
    """A kind of model: what its builder honours, and what it needs of its input.

    ``options`` are the build options beyond :data:`COMMON_OPTIONS` that change its graph; a
    family refuses any other one instead of dropping it (``--activation`` on MobileNetV3-SSDLite,
    whose blocks fix their own activations, would otherwise build the same graph)."""

    name: str
    display: str  # in reports and plots
    size_multiple: dict  # task -> the input size must be a multiple of this
    options: frozenset = frozenset()
    why_not: str = ""  # said when an option is refused

    def check_options(self, model_id: str, **given) -> None:
        """Raise on the first option that is set (given, and not its default: None, or
        :data:`OPTION_DEFAULTS`) but that this family ignores. 0 is a setting (``se_ratio=0`` removes
        squeeze-excite), except where 0 is the option's default."""
        for name, value in given.items():
            unset = value is None or (name in OPTION_DEFAULTS and value == OPTION_DEFAULTS[name])
            if not unset and name not in self.options | COMMON_OPTIONS:
                raise ValueError(f"{model_id} ({self.display}) does not take {name.replace('_', ' ')} "
                                 f"{value!r}: {self.why_not or 'its builder has no such option'}")


# Detectors: P7 has stride 128 and anchors sit on exact grids. Classifiers and SSDLite
# only need whole stride-32 maps (SAME padding and cropped upsampling handle the rest).
FAMILIES = {f.name: f for f in [
    Family("spinenet", "SpineNet", {"detection": 128, "classification": 32, INSTANCE_SEGMENTATION: 128},
           frozenset({"activation", "spec", "stochastic_depth", "se_gate", "head_filters", "anchor_scale",
                      "channel_divisor", "se_ratio"}),
           why_not="its detectors have RetinaNet anchors, sized by --anchor-scale, not SSD anchors"),
    Family("resnet_fpn", "ResNet-FPN", {"detection": 128, "classification": 32, INSTANCE_SEGMENTATION: 128},
           frozenset({"activation", "head_filters", "anchor_scale"}),
           why_not="the block spec, stochastic depth, squeeze-excite and channel rounding are SpineNet's, and its "
                   "RetinaNet anchors are sized by --anchor-scale"),
    Family("ssdlite", "MobileNetV3-SSDLite", {"detection": 32, "classification": 32}, frozenset({"ssd_min_scale"}),
           why_not="MobileNetV3 fixes each block's activation (ReLU or hard-swish) and the SSD extras use ReLU6; "
                   "it has no block spec or stochastic depth, and SSD anchors (sized by --ssd-min-scale) and heads"),
]}


@dataclass(frozen=True)
class ModelInfo:
    """One model id: what it is and how to build it."""

    model_id: str
    kind: str  # a key of FAMILIES: "spinenet", "ssdlite" or "resnet_fpn"
    description: str
    image_size: int
    activation: str
    head_filters: int = 256
    head_convs: int = 4
    head_separable: bool = False
    spinenet: Optional[SpineNetConfig] = None
    ssd_size: Optional[str] = None
    recipe: str = "mobile"  # its base training recipe: configs/base/<recipe>.yaml

    @property
    def detector(self) -> str:
        """The detection head and anchors its detector has: "SSDLite" or "RetinaNet"."""
        return "SSDLite" if self.kind == "ssdlite" else "RetinaNet"


def _mobile(model_id, scale, head, size, description, activation="swish", **latency_options):
    cfg = SpineNetConfig("mbconv", scale, endpoint_filters=head, spec=SPINENET_MOBILE_49, **latency_options)
    return ModelInfo(model_id, "spinenet", description, size, activation, head, 4, True, cfg)


def _bottleneck(model_id, scale, endpoints, size, description, alpha=0.5, repeats=1, head_convs=4):
    cfg = SpineNetConfig("bottleneck", scale, endpoints, alpha, repeats)
    return ModelInfo(model_id, "spinenet", description, size, "relu", endpoints, head_convs, False, cfg,
                     recipe="spinenet")


MODELS = {m.model_id: m for m in [
    _mobile("spinenet49xxs", 0.6, 24, 256, "SpineNet-Mobile 49, widths x0.6, head 24 (paper's 49XXS)"),
    _mobile("spinenet49xs", 0.65, 40, 384, "SpineNet-Mobile 49, widths x0.65, head 40 (paper's 49XS)"),
    _mobile("spinenet49s_mobile", 0.75, 48, 384, "SpineNet-Mobile 49, widths x0.75, head 48 (paper's 49S)"),
    _mobile("spinenet49_mobile", 1.0, 48, 384, "SpineNet-Mobile 49, widths x1.0, head 48 (paper's 49)"),
    # the latency options that won in `bench variants` (docs/benchmarks.md), together: not the paper's
    _mobile("spinenet49xs_lite", 0.65, 40, 384, "SpineNet-Mobile 49XS for phone CPUs: widths rounded to multiples "
            "of 8, no squeeze-excite, ReLU6 (not the paper's; its AP is unmeasured)", activation="relu6",
            channel_divisor=8, se_ratio=0.0),
    _bottleneck("spinenet49s", 0.75, 128, 640, "SpineNet-49S, widths x0.75, endpoints/head 128"),
    _bottleneck("spinenet49", 1.0, 256, 640, "SpineNet-49, endpoints/head 256"),
    _bottleneck("spinenet96", 1.0, 256, 1024, "SpineNet-96, every block repeated twice", repeats=2),
    _bottleneck("spinenet143", 1.0, 256, 1280, "SpineNet-143, 3 repeats, alpha 1.0", alpha=1.0, repeats=3),
    _bottleneck("spinenet190", 1.3, 512, 1280, "SpineNet-190, 4 repeats, widths x1.3, head 512 x7",
                alpha=1.0, repeats=4, head_convs=7),
    ModelInfo("mnv3_small_ssdlite", "ssdlite", "MobileNetV3-Small-SSDLite", 320, "relu", ssd_size="small"),
    ModelInfo("mnv3_large_ssdlite", "ssdlite", "MobileNetV3-Large-SSDLite", 320, "relu", ssd_size="large"),
    ModelInfo("resnet50_fpn", "resnet_fpn", "ResNet-50-FPN RetinaNet (scale-decreased baseline)", 640, "relu",
              recipe="resnet_fpn"),
]}


def get_model_info(model_id: str) -> ModelInfo:
    """Look up a model id; the error lists the ids there are."""
    try:
        return MODELS[model_id]
    except KeyError:
        raise ValueError(f"unknown model id {model_id!r}; known ids: {', '.join(MODELS)}") from None


def check_image_size(model_id: str, image_size: int, task: str = "detection") -> None:
    """Raise unless ``image_size`` suits ``model_id`` for ``task`` (a positive multiple of 128 or 32)."""
    family = family_of(model_id)
    if task not in family.size_multiple:
        raise ValueError(f"{model_id} ({family.display}) has no {task} model; it builds: "
                         f"{', '.join(family.size_multiple)}")
    multiple = family.size_multiple[task]
    if not isinstance(image_size, int) or image_size <= 0 or image_size % multiple:
        raise ValueError(f"image size {image_size!r} for {model_id} must be a positive multiple of {multiple}")


def family_of(model_id: str) -> Family:
    """The :class:`Family` of a model id (a clear error for unknown ids)."""
    return FAMILIES[get_model_info(model_id).kind]
