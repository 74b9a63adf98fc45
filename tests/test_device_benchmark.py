"""`benchmark --adb`: the phone flow end to end against a stand-in adb (a device whose commands
run here) and a stand-in benchmark_model that prints the real tool's output (tests/fixtures/);
every device error is one line. No phone was available where the kit was built."""
import json
import os
import shutil
import stat
import sys

import pytest

from mobile_spinenet.cli import main
from mobile_spinenet.eval.device_benchmark import DeviceError, parse_benchmark_output

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "benchmark_model")
HOST_ELF = shutil.which("true")  # an x86-64 program: the stand-in device says its ABI is x86_64


def _fixture(name):
    return open(os.path.join(FIXTURES, name)).read()


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A stand-in device: `adb` on PATH, one device ready, two big cores (2, 3) of four."""
    state = tmp_path / "adb-state"
    for core, khz in enumerate((1_800_000, 1_800_000, 2_850_000, 2_850_000)):
        folder = state / "root" / "sys" / "devices" / "system" / "cpu" / f"cpu{core}" / "cpufreq"
        folder.mkdir(parents=True)
        (folder / "cpuinfo_max_freq").write_text(f"{khz}\n")
    (state / "root" / "data" / "local" / "tmp").mkdir(parents=True)
    (state / "devices.txt").write_text("R5CT1234\tdevice\n")
    (state / "props.json").write_text(json.dumps({
        "ro.product.model": "Pixel 8", "ro.product.manufacturer": "Google", "ro.build.version.release": "15",
        "ro.soc.model": "Tensor G3", "ro.product.cpu.abi": "x86_64"}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!/bin/sh\nexec {sys.executable} {os.path.join(HERE, 'stand_ins', 'fake_adb.py')} \"$@\"\n")
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    monkeypatch.setenv("MOBILE_SPINENET_BENCHMARK_MODEL", HOST_ELF)
    model = tmp_path / "xxs_int8.tflite"
    model.write_bytes(b"TFL3 stand-in model")
    return {"state": state, "model": model}


def _commands(state):
    return [json.loads(line) for line in (state / "commands.log").read_text().splitlines()]


def test_a_phone_benchmark_pushes_pins_runs_and_parses_in_interleaved_rounds(phone, capsys):
    other = phone["model"].with_name("mnv3_int8.tflite")
    other.write_bytes(b"TFL3 another")
    assert main(["benchmark", str(phone["model"]), str(other), "--adb", "--threads", "1,4", "--delegate",
                 "xnnpack,gpu", "--rounds", "2", "--runs", "20", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["device"]["model"] == "Pixel 8" and measured["device"]["soc"] == "Tensor G3"
    assert measured["device"]["cpu_mask"] == "c" and "cores 2,3 at 2.85 GHz (of 4)" in measured["device"]["cores"]
    entries = measured["results"][str(phone["model"])]
    assert [(e["threads"], e["delegate"]) for e in entries] == [(1, "xnnpack"), (1, "gpu"), (4, "xnnpack"), (4, "gpu")]
    xnnpack, gpu = entries[0], entries[1]
    assert xnnpack["median_ms"] == pytest.approx(8.06635) and xnnpack["init_ms"] == pytest.approx(38.412)
    assert xnnpack["peak_memory_mb"] == pytest.approx(14.0703) and xnnpack["delegation"] == "complete"
    assert xnnpack["rounds"] == 2 and len(xnnpack["round_medians_ms"]) == 2 and "delegation_note" not in xnnpack
    assert gpu["delegated"] == {"delegate": "TfLiteGpuDelegateV2", "nodes": 388, "of": 412, "partitions": 3}
    assert "took 388 of 412 nodes in 3 partition(s); the rest ran on the CPU" in gpu["delegation_note"]
    commands = [" ".join(c) for c in _commands(phone["state"])]
    runs = [c for c in commands if "benchmark_model --graph" in c]
    assert len(runs) == 2 * 2 * 2 * 2  # rounds x files x threads x delegates
    assert all(c.startswith("-s R5CT1234 shell taskset c ") for c in runs)  # the big cores, on the chosen device
    first_round = runs[:8]  # every file in every round: round 1 times both files before round 2 starts
    assert sum("0_xxs_int8" in c for c in first_round) == 4 and sum("1_mnv3_int8" in c for c in first_round) == 4
    assert "--num_threads=4" in runs[2] and "--use_gpu=true" in runs[1] and "--num_runs=20" in runs[0]
    assert any("push" in c and "benchmark_model" in c for c in commands)
    assert not (phone["state"] / "root" / "data" / "local" / "tmp" / "mobile_spinenet").exists()  # cleaned up


def test_the_table_names_the_device_and_a_delegate_that_fell_back(phone, capsys):
    assert main(["benchmark", str(phone["model"]), "--adb", "R5CT1234", "--threads", "2", "--delegate", "nnapi",
                 "--rounds", "1", "--cpu-mask", "0x3"]) == 0
    out = capsys.readouterr().out
    assert "Google Pixel 8, Android 15, Tensor G3 (x86_64), pinned to cores of --cpu-mask" in out
    assert "note: xxs_int8.tflite, 2 thread(s): the nnapi delegate took no node" in out
    assert all(" taskset 3 " in " ".join(c) for c in _commands(phone["state"]) if "--graph" in " ".join(c))


@pytest.mark.parametrize("setup, args, message", [
    (lambda s: (s / "devices.txt").write_text(""), [], "no Android device is connected"),
    (lambda s: (s / "devices.txt").write_text("R5CT1234\tunauthorized\n"), [],
     "device R5CT1234 is unauthorized: unlock it and accept the USB debugging prompt"),
    (lambda s: (s / "devices.txt").write_text("A1\tdevice\nB2\tdevice\n"), [],
     "several devices are connected (A1, B2): pass --adb SERIAL"),
    (lambda s: None, ["--adb", "XYZ"], "no device XYZ is connected (connected: R5CT1234)"),
    (lambda s: (s / "full").write_text(""), [], "/data/local/tmp on R5CT1234 is full (No space left on device)"),
    (lambda s: (s / "props.json").write_text(json.dumps({"ro.product.cpu.abi": "arm64-v8a"})), [],
     "is built for x86-64, the device runs arm64-v8a: get the arm64-v8a build of benchmark_model"),
    (lambda s: None, ["--cpu-mask", "zz"], "--cpu-mask must be a hexadecimal core mask"),
])
def test_each_device_problem_is_one_line(phone, capsys, setup, args, message):
    setup(phone["state"])
    argv = ["benchmark", str(phone["model"]), "--threads", "1", "--rounds", "1"] + (args if "--adb" in args
                                                                                     else ["--adb", *args])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_a_missing_tool_says_where_to_get_it_and_a_failed_run_names_the_file(phone, capsys, monkeypatch):
    monkeypatch.delenv("MOBILE_SPINENET_BENCHMARK_MODEL")
    assert main(["benchmark", str(phone["model"]), "--adb"]) == 2
    err = capsys.readouterr().err
    assert "--benchmark-binary PATH or set MOBILE_SPINENET_BENCHMARK_MODEL" in err and "android_aarch64" in err
    broken = phone["model"].with_name("broken.tflite")
    broken.write_bytes(b"not a model")
    assert main(["benchmark", str(broken), "--adb", "--benchmark-binary", HOST_ELF, "--threads", "1",
                 "--rounds", "1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("  ..")]  # progress
    assert lines == ["mobile-spinenet benchmark: error: broken.tflite, 1 thread(s), xnnpack: benchmark_model on the "
                     "device failed: ERROR: The model is not a valid Flatbuffer buffer"]
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["benchmark", str(phone["model"]), "--adb", "--benchmark-binary", HOST_ELF]) == 2
    assert "adb not found" in capsys.readouterr().err


def test_host_only_and_phone_only_flags_are_refused_in_the_other_mode(phone, capsys):
    assert main(["benchmark", str(phone["model"]), "--cpu-mask", "f0"]) == 2
    assert "--cpu-mask is for benchmark --adb" in capsys.readouterr().err
    assert main(["benchmark", str(phone["model"]), "--delegate", "gpu"]) == 2
    assert "gpu and nnapi are for benchmark --adb" in capsys.readouterr().err
    assert main(["benchmark", str(phone["model"]), "--adb", "--profile"]) == 2
    assert "--profile is for the host benchmark" in capsys.readouterr().err


def test_the_parser_reads_every_recorded_output_format():
    old = parse_benchmark_output(_fixture("nnapi_none.txt"))  # no INFO prefix, the older memory line
    assert old["median_ms"] == pytest.approx(26.1407) and old["peak_memory_mb"] == pytest.approx(18.4)
    assert old["delegation"] == "none" and old["runs"] == 50 and old["std_ms"] == pytest.approx(0.27)
    xnnpack = parse_benchmark_output(_fixture("xnnpack.txt"))
    assert xnnpack["first_inference_ms"] == pytest.approx(11.873) and xnnpack["model_mb"] == pytest.approx(1.52412)
    old_style = _fixture("xnnpack.txt").replace("Replacing 412 out of 412 node(s)", "Replacing 412 node(s)")
    assert parse_benchmark_output(old_style)["delegated"]["of"] is None
    with pytest.raises(DeviceError, match="printed no timings: ERROR: Benchmarking failed."):
        parse_benchmark_output(_fixture("failed.txt"))
