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
