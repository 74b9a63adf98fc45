"""`mobile-spinenet search` end to end with the real evaluation on a few demo images: the latency
oracle builds and times an int8 file against the target's, the proxy trains a real run, the CLI
writes its outputs, and the best architecture file trains with `train --spec` (slow: minutes)."""
import csv

import pytest

from mobile_spinenet.cli import main
from mobile_spinenet.data.demo import make_demo_dataset

pytestmark = pytest.mark.slow


def test_search_end_to_end_and_train_the_found_architecture(tmp_path, capsys):
    make_demo_dataset(str(tmp_path / "data"), 0, 32, 4)
    out = tmp_path / "search"
    args = ["search", "--data", str(tmp_path / "data"), "--out", str(out), "--trials", "2", "--image-size", "128",
            "--target", "mnv3_small_ssdlite", "--proxy-images", "16", "--proxy-epochs", "1", "--proxy-val-images", "4",
            "--runs", "5", "--rounds", "1", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 finished trial(s), 0 failed" in printed
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert [r["state"] for r in rows] == ["complete", "complete"]
    for row in rows:
        assert float(row["latency_ms"]) > 0 and 0 <= float(row["proxy_AP"]) <= 100 and float(row["multiply_adds_M"]) > 0
    assert (out / "reference" / "reference_mnv3_small_ssdlite_128.tflite").stat().st_size > 100_000
    assert (out / "pareto.png").stat().st_size > 5_000
    best = sorted((out / "best").glob("rank1_*.yaml"))
    assert len(best) == 1
    run = tmp_path / "found"
    assert main(["train", "--spec", str(best[0]), "--config", "cpu_fast", "--image-size", "128", "--epochs", "1",
                 "--batch", "8", "--data", str(tmp_path / "data" / "train"), "--out", str(run), "--no-progress"]) == 0
    assert main(["eval", str(run), "--data", str(tmp_path / "data" / "val")]) == 0
