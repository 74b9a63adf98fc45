"""`mobile-spinenet compare` end to end on a few demo images: two models, a tiny budget, every
stage, the report, and a second call that resumes from the recorded stages (slow: ~5 minutes)."""
import json

import pytest

from mobile_spinenet.cli import main
from mobile_spinenet.data.demo import make_demo_dataset

pytestmark = pytest.mark.slow


def test_compare_writes_the_report_and_resumes(tmp_path, capsys):
    make_demo_dataset(str(tmp_path / "data"), 0, 64, 16)
    args = ["compare", "--data", str(tmp_path / "data"), "--models", "spinenet49xxs,mnv3_small_ssdlite",
            "--budget", "0.3", "--out", str(tmp_path / "out"), "--runs", "5", "--image-size", "128", "--no-progress"]
    assert main(args) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| spinenet49xxs | 128 |" in report and "| mnv3_small_ssdlite | 128 |" in report
    assert "*paper Table 9: spinenet49xxs*" in report and "spinenet49xxs / mnv3_small_ssdlite" in report
    for name in ("ap_vs_multiply_adds.png", "ap_vs_latency.png"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    result = json.loads((tmp_path / "out" / "results" / "spinenet49xxs.json").read_text())
    assert result["int8"]["quant"] == "int8-qat" and result["int8"]["float_ops"] == {}
    assert [b["threads"] for b in result["benchmark"]] == [1, 2] and result["counts"]["params"] > 500_000
    assert result["training"]["epochs"] > 0 and set(result["minutes"]) >= {"train", "qat", "export_int8"}
    capsys.readouterr()
    assert main(args) == 0  # everything recorded: nothing is trained or exported again
    assert "==" not in capsys.readouterr().out
