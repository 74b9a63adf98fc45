"""The validation cadence, the loop clock and `bench train --epochs` (the whole loop's images/s)."""
import json
import os
import subprocess
import sys

import pytest

from mobile_spinenet.training.cadence import closes_with_validation, validation_interval
from mobile_spinenet.training.loop_time import LoopClock, format_loop_time

CLI = [sys.executable, "-m", "mobile_spinenet"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}


def test_the_default_cadence_follows_the_validation_cost():
    # the demo set: 4,000 training images an epoch, 256 for batch norm, 200 val images -> every 2nd epoch
    assert validation_interval(None, 4000, 256, 200) == 2
    # a small real set: 80 images an epoch (5 steps of 16), 80 for batch norm, 17 val -> every 21st
    assert validation_interval(None, 80, 80, 17) == 21
    assert validation_interval(None, 100_000, 256, 500) == 1  # a large set validates every epoch
    assert validation_interval(3, 80, 80, 17) == 3  # the user's choice wins
    assert validation_interval(None, 80, 0, 0) == 1  # nothing to validate: every epoch closes the same


def test_the_last_epoch_is_always_validated():
    assert [e for e in range(1, 8) if closes_with_validation(e, 7, 3)] == [3, 6, 7]
    assert [e for e in range(1, 7) if closes_with_validation(e, 6, 3)] == [3, 6]
    assert [e for e in range(1, 4) if closes_with_validation(e, 3, 1)] == [1, 2, 3]


def test_the_loop_clock_splits_wall_time_into_phases():
    import time

    clock = LoopClock()
    with clock.timing("steps"):
        time.sleep(0.05)
    clock.count_step(8)
    with clock.timing("validation"):
        time.sleep(0.05)
    time.sleep(0.02)  # other
    summary = clock.summary()
    assert summary["images"] == 8 and summary["steps"] == 1
    assert summary["validation_share"] == pytest.approx(0.05 / summary["wall_seconds"], rel=0.3)
    assert summary["outside_share"] > summary["validation_share"] > 0
    assert summary["step_images_per_s"] > summary["loop_images_per_s"]
    shares = sum(value for key, value in summary.items() if key.endswith("_share") and key != "outside_share")
    assert shares == pytest.approx(summary["outside_share"], abs=1e-6)
    assert "outside the steps: input 0.0%, validation" in format_loop_time(summary)
    with pytest.raises(ValueError, match="unknown loop phase 'eval'"):
        with clock.timing("eval"):
            pass


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "1", "--steps", "5"], "drop --steps"),
    (["--epochs", "1"], "give --data"),
    (["--val", "x"], "--val and --validate-every belong to bench train --epochs"),
])
def test_bench_train_refuses_flags_the_mode_does_not_use(extra, message):
    done = subprocess.run(CLI + ["bench", "train", "--model", "mnv3_small_ssdlite", *extra], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_bench_train_epochs_times_the_whole_loop(tmp_path):
    from mobile_spinenet.data.demo import make_split

    make_split(str(tmp_path / "train"), "train", 16, seed=3)
    make_split(str(tmp_path / "val"), "val", 4, seed=4)
    done = subprocess.run(CLI + ["bench", "train", "--model", "mnv3_small_ssdlite", "--image-size", "128",
                                 "--batch", "4", "--epochs", "2", "--data", str(tmp_path / "train"),
                                 "--val", str(tmp_path / "val"), "--validate-every", "1", "--json"],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["steps"] == 8 and result["images"] == 32 and result["validate_every"] == 1
    assert result["val_images"] == 4 and result["cpu"].count(",") >= 2  # model, cores, instruction sets
    assert 0 < result["loop_images_per_s"] < result["step_images_per_s"]
    assert result["validation_share"] > 0


def test_precision_auto_follows_the_device_and_refuses_what_it_cannot_compute():
    from mobile_spinenet.training.precision import resolve_precision

    def yes():
        return True

    def no():
        return False

    assert resolve_precision("auto", "default", has_gpu=yes, native_bfloat16=no) == "mixed_float16"
    assert resolve_precision("auto", "default", has_gpu=no, native_bfloat16=yes) == "mixed_bfloat16"  # AMX, AVX-512 BF16
    assert resolve_precision("auto", "default", has_gpu=no, native_bfloat16=no) == "float32"  # AVX2 only
    assert resolve_precision("auto", "tpu", has_gpu=no, native_bfloat16=no) == "mixed_bfloat16"
    assert resolve_precision("float32", "default", has_gpu=yes, native_bfloat16=yes) == "float32"
    with pytest.raises(ValueError, match="mixed_float16 needs a GPU and this machine has none"):
        resolve_precision("mixed_float16", "default", has_gpu=no, native_bfloat16=yes)
    with pytest.raises(ValueError, match="not for TPUs"):
        resolve_precision("mixed_float16", "tpu", has_gpu=no, native_bfloat16=no)
    with pytest.raises(ValueError, match="--precision must be one of float32, mixed_bfloat16, mixed_float16, auto, "
                                         "got 'fp8'"):
        resolve_precision("fp8", "default", has_gpu=no, native_bfloat16=no)
    with pytest.raises(ValueError, match="mixed_bfloat16 needs a CPU with AVX-512 BF16 or AMX"):
        resolve_precision("mixed_bfloat16", "default", has_gpu=no, native_bfloat16=no)
    assert resolve_precision("mixed_bfloat16", "default", has_gpu=no, native_bfloat16=yes) == "mixed_bfloat16"


def test_precision_in_a_config_file_and_the_field_it_replaced(tmp_path):
    from mobile_spinenet.training.config import load_config, read_saved_config, save_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("precision: half\n")
    with pytest.raises(ValueError, match="--precision must be one of .* got 'half' \\(config field precision\\)"):
        load_config("spinenet49xxs", str(bad))
    old = tmp_path / "old.yaml"  # a run written before --precision
    config = load_config("spinenet49xxs")
    save_config(config, str(old))
    text = old.read_text().replace("precision: float32", "mixed_precision: true")
    old.write_text(text)
    assert read_saved_config(str(old)).precision == "auto"
    old.write_text(text.replace("mixed_precision: true", "mixed_precision: false"))
    assert read_saved_config(str(old)).precision == "float32"
