"""The kit's layers (docs/architecture.md) depend downwards only, with no import cycle, counting
the imports inside functions too (they hide dependencies from a reader, not from this test)."""
import ast
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = {"mobile_spinenet": "mobile_spinenet", "quantization": "mobile_spinenet.quantization",
           "eval": "mobile_spinenet.eval"}

# Bottom to top; a module may import only from its own layer and the ones below. Names drop the
# "mobile_spinenet." prefix. Package __init__ files hold no code of their own and are not listed.
LAYERS = [
    ("core", ["io_utils", "ownership", "host", "progress", "specs", "architecture", "search.space", "registry", "paper", "anchors", "box_coder", "backend"]),
    ("data", ["data.records", "data.images", "data.glyphs", "data.demo", "data.class_folders", "data.readers",
              "data.labeler", "data.pipeline", "data.masks", "data.yolo", "data.convert"]),
    ("models", ["layers", "blocks", "resample", "spinenet", "heads", "mobilenet_v3", "ssdlite", "resnet_fpn",
                "pyramids", "zoo", "counting", "summary", "postprocess", "rcnn.config", "rcnn.roi_align", "rcnn.rpn",
                "rcnn.sampling", "rcnn.heads", "rcnn.losses", "rcnn.model"]),
    ("runtime", ["quantization.metadata", "quantization.interpreter"]),
    ("scoring", ["eval.coco_metrics", "eval.detector_eval", "eval.classifier_eval", "eval.instance_eval",
                 "eval.external_detectors"]),
    ("training", ["training.config", "training.checkpoints", "training.logs", "training.runs", "training.schedule",
                  "training.stop", "training.workers", "training.distribute", "training.ema", "training.optimizers", "training.losses",
                  "training.precise_bn", "training.xla", "training.init_weights", "training.tasks", "training.precision", "training.cadence", "training.loop_time",
                  "training.trainer", "training.bench"]),
    ("interop", ["interop.coco_classes", "interop.model_garden", "interop.model_garden_export"]),
    ("quantization", ["quantization.qat", "quantization.postprocess_op", "quantization.export", "quantization.verify",
                      "quantization.qat_run", "quantization.calibration", "quantization.export_classifier", "quantization.export_run",
                      "quantization.android_assets", "quantization.savedmodel_export"]),
    ("eval", ["eval.evaluate", "eval.predict", "eval.benchmark", "eval.device_benchmark", "eval.op_profile", "eval.activation_bench", "eval.latency_variants", "eval.significance", "eval.entries",
              "eval.latency_match", "eval.compare_report", "eval.int8_sensitivity", "eval.model_result"]),
    ("pipeline", ["eval.compare", "eval.compare_external", "eval.seed_spread", "search.latency", "search.proxy", "search.report",
                  "search.study"]),
    ("commands", ["commands.common", "commands.data", "commands.train", "commands.quantize", "commands.evaluate",
                  "commands.search",
                  "commands.interop", "cli",
                  "__main__"]),
]
LAYER_OF = {module: k for k, (_, modules) in enumerate(LAYERS) for module in modules}


def _modules() -> dict:
    found = {}
    for folder, package in FOLDERS.items():
        for directory, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                if name.endswith(".py") and name != "__init__.py":
                    relative = os.path.relpath(os.path.join(directory, name), os.path.join(ROOT, folder))[:-3]
                    dotted = (package + "." + relative.replace(os.sep, ".")).removeprefix("mobile_spinenet.")
                    found[dotted] = os.path.join(directory, name)
    return found


def _imports(path: str, modules: dict) -> set:
    """The kit's modules that ``path`` imports anywhere (module level or inside functions)."""
    targets = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mobile_spinenet"):
            base = node.module.removeprefix("mobile_spinenet").lstrip(".")
            names = [base] + [f"{base}.{a.name}".lstrip(".") for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("mobile_spinenet").lstrip(".") for a in node.names
                     if a.name.startswith("mobile_spinenet")]
        targets |= {n for n in names if n in modules}
    return targets


def test_every_module_has_a_layer():
    modules = _modules()
    assert sorted(set(modules) - set(LAYER_OF)) == [], "place new modules in LAYERS and docs/architecture.md"
    assert sorted(set(LAYER_OF) - set(modules)) == [], "LAYERS names modules that no longer exist"


def test_imports_point_down_only():
    modules = _modules()
    upward = [f"{m} ({LAYERS[LAYER_OF[m]][0]}) imports {t} ({LAYERS[LAYER_OF[t]][0]})"
              for m, path in modules.items() for t in sorted(_imports(path, modules))
              if LAYER_OF[t] > LAYER_OF[m]]
    assert upward == []


def test_there_is_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(path, modules) - {m} for m, path in modules.items()}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


LAYER_BY_LAYER = r"""
import importlib, json, sys
layers = json.loads(sys.argv[1])
loaded_too_early = []
for k, (name, modules) in enumerate(layers):
    for module in modules:
        importlib.import_module("mobile_spinenet." + module)
    above = {"mobile_spinenet." + m for _, higher in layers[k + 1:] for m in higher}
    loaded_too_early += [f"importing {name} loaded {m}" for m in sorted(above & set(sys.modules))]
print(json.dumps(loaded_too_early))
"""


@pytest.mark.parametrize("layers", [LAYERS[:-1]])  # commands import argparse-level code only; the rest, bottom-up
def test_each_layer_imports_without_the_layers_above_it(layers):
    result = subprocess.run([sys.executable, "-c", LAYER_BY_LAYER, json.dumps(layers)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
