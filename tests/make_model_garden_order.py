"""Write ``mobile_spinenet/interop/model_garden_order.json``: for each backbone structure (family,
block repeats), the number N of the object name ``layer_with_weights-N`` Model Garden's checkpoints give each
backbone layer, in Model Garden's creation order. The kit's ``export-checkpoint model-garden``
reads it, so the kit needs no Model Garden at run time; ``test_model_garden_export.py`` regenerates
the entries it can build quickly and compares. Run from the repository root with Model Garden
installed (``bash run.sh setup`` puts it in the test venv):

    .venv/bin/python tests/make_model_garden_order.py [KIT_ID ...]
"""
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import model_garden_reference as reference  # noqa: E402

from mobile_spinenet.interop.model_garden import ORDER_FILE, order_key  # noqa: E402
from mobile_spinenet.registry import get_model_info  # noqa: E402

DEFAULT_IDS = ("spinenet49xxs", "spinenet49", "spinenet96", "spinenet143", "spinenet190")

if __name__ == "__main__":
    table = json.load(open(ORDER_FILE)) if os.path.isfile(ORDER_FILE) else {}
    for kit_id in sys.argv[1:] or DEFAULT_IDS:
        key = order_key(get_model_info(kit_id).spinenet)
        print(f"{kit_id} -> {key}", flush=True)
        table[key] = reference.backbone_object_order(kit_id)
    lines = []  # one line per layer kind: {"mbconv-r1": {"conv": [0, 6, ...], ...}}
    for key, kinds in sorted(table.items()):
        rows = [f'  "{kind}": {json.dumps(numbers)}' for kind, numbers in sorted(kinds.items())]
        lines.append(f'"{key}": {{\n' + ",\n".join(rows) + "\n}")
    with open(ORDER_FILE, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
