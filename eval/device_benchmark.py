"""``benchmark --adb``: LiteRT's own ``benchmark_model`` on a connected Android device.

Each file and the tool are pushed to ``/data/local/tmp`` once; every (file, thread count,
delegate) runs pinned to the device's fastest cores (``taskset`` with the mask of the cores whose
``cpuinfo_max_freq`` is highest, or ``--cpu-mask``), in interleaved rounds like the host
benchmark, and the median round counts. From the tool's output: init time, first inference,
warm-up and inference averages, peak memory, and the delegate's own account of what it took
("Replacing N out of M node(s)", "completely / partially executed by the delegate"): a delegate
that left part of the graph to the CPU, or none of it, is reported, not hidden.

Device problems (no device, unauthorized, several devices without a serial, a tool built for
another ABI, a full ``/data/local/tmp``) are one line each. Tested against a stand-in ``adb`` and a
stand-in ``benchmark_model`` that prints the real tool's output (tests/fixtures/benchmark_model/);
no phone was available where the kit was built."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Optional

BINARY_ENV = "MOBILE_SPINENET_BENCHMARK_MODEL"  # the benchmark_model built for the device's ABI
REMOTE_DIR = "/data/local/tmp/mobile_spinenet"
DELEGATES = ("xnnpack", "gpu", "nnapi", "none")
DELEGATE_FLAGS = {"xnnpack": ["--use_xnnpack=true"], "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"],
                  "none": ["--use_xnnpack=false"]}
WHERE_TO_GET = ("LiteRT's prebuilt benchmark_model for Android (android_aarch64_benchmark_model from the LiteRT / "
                "TensorFlow Lite 'Performance measurement' page, or built with bazel: "
                "//tflite/tools/benchmark:benchmark_model --config=android_arm64)")
# ELF e_machine of each Android ABI
ABI_MACHINES = {"arm64-v8a": 183, "armeabi-v7a": 40, "x86_64": 62, "x86": 3}
MACHINE_NAMES = {183: "arm64 (aarch64)", 40: "32-bit ARM", 62: "x86-64", 3: "x86"}


class DeviceError(ValueError):
    """A problem with the device, adb or the benchmark tool: one line."""


@dataclass(frozen=True)
class DeviceOptions:
    """``serial``: the device (None: the one connected); ``binary``: benchmark_model for its ABI
    (None: $MOBILE_SPINENET_BENCHMARK_MODEL); ``cpu_mask``: taskset mask in hex (None: the fastest
    cores); ``adb``: the adb command."""

    serial: Optional[str] = None
    binary: Optional[str] = None
    cpu_mask: Optional[str] = None
    adb: str = "adb"

    def validate(self) -> "DeviceOptions":
        if self.cpu_mask is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", self.cpu_mask or ""):
            raise DeviceError(f"--cpu-mask must be a hexadecimal core mask such as f0, got {self.cpu_mask!r}")
        if self.cpu_mask is not None and int(self.cpu_mask, 16) == 0:
            raise DeviceError("--cpu-mask 0 pins to no core")
        return self


class Device:
    """One connected device, driven through adb."""

    def __init__(self, options: DeviceOptions):
        self.options = options.validate()
        if shutil.which(options.adb) is None and not os.path.isfile(options.adb):
            raise DeviceError(f"adb not found ({options.adb!r} is not on PATH): install Android's platform-tools "
                              f"(sdkmanager platform-tools, or the distribution's adb package)")
        self.serial = self._choose(options.serial)

    # -- adb --------------------------------------------------------------------------------
    def _run(self, args: list, serial: Optional[str] = None, timeout: float = 600) -> str:
        command = [self.options.adb] + (["-s", serial] if serial else []) + args
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"adb {' '.join(args[:2])} did not answer within {timeout:.0f} s") from None
        text = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0 or _adb_failure(text):
            raise DeviceError(self._explain(text, args))
        return done.stdout

    def shell(self, command: str, timeout: float = 600) -> str:
        return self._run(["shell", command], self.serial, timeout)

    def _explain(self, text: str, args: list) -> str:
        low = text.lower()
        if "no space left" in low:
            return (f"{REMOTE_DIR.rsplit('/', 1)[0]} on {self.serial or 'the device'} is full (No space left on "
                    f"device): free space there (adb shell rm ...) and run again")
        if "unauthorized" in low:
            return (f"{'device ' + self.serial if self.serial else 'the device'} is unauthorized: unlock it and "
                    f"accept the USB debugging prompt (then run again)")
        if "more than one device" in low:
            return "several devices are connected: pass --adb SERIAL (see `adb devices`)"
        if "no devices" in low or "device offline" in low or "not found" in low and "device" in low:
            return "no Android device is connected (adb devices lists none that is ready): connect one with USB " \
                   "debugging on"
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = errors[0] if errors else lines[-1] if lines else "no output"
        if args[0] == "shell":
            words = [w for w in args[1].split() if not re.fullmatch(r"taskset|[0-9a-fA-F]+", w)]
            return f"{os.path.basename(words[0]) if words else 'the shell command'} on the device failed: {reason}"
        return f"adb {' '.join(args[:2])} failed: {reason}"

    def _choose(self, serial: Optional[str]) -> str:
        listed = []
        for line in self._run(["devices"]).splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2:
                listed.append((fields[0], fields[1]))
        if serial is not None:
            state = dict(listed).get(serial)
            if state is None:
                names = ", ".join(s for s, _ in listed) or "none"
                raise DeviceError(f"no device {serial} is connected (connected: {names})")
            self._check_state(serial, state)
            return serial
        if not listed:
            raise DeviceError("no Android device is connected (adb devices lists none): connect one with USB "
                              "debugging on")
        if len(listed) > 1:
            raise DeviceError(f"several devices are connected ({', '.join(s for s, _ in listed)}): pass --adb SERIAL")
        self._check_state(*listed[0])
        return listed[0][0]

    @staticmethod
    def _check_state(serial: str, state: str) -> None:
        if state == "unauthorized":
            raise DeviceError(f"device {serial} is unauthorized: unlock it and accept the USB debugging prompt "
                              f"(then run again)")
        if state != "device":
            raise DeviceError(f"device {serial} is {state}, not ready: reconnect it")

    # -- what the device is -------------------------------------------------------------------
    def properties(self) -> dict:
        def prop(name):
            return self.shell(f"getprop {name}").strip()

        return {"serial": self.serial, "model": prop("ro.product.model"),
                "manufacturer": prop("ro.product.manufacturer"), "android": prop("ro.build.version.release"),
                "soc": prop("ro.soc.model") or prop("ro.board.platform") or prop("ro.hardware"),
                "abi": prop("ro.product.cpu.abi")}

    def fastest_cores_mask(self) -> tuple:
        """``(hex mask, description)`` of the cores with the highest maximum frequency (the big
        cluster), or of all cores when the frequencies cannot be read."""
        out = self.shell("for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
                         "echo $f $(cat $f); done")
        frequencies = {}
        for line in out.splitlines():
            match = re.search(r"cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)", line)
            if match:
                frequencies[int(match.group(1))] = int(match.group(2))
        if not frequencies:
            return None, "all cores (the device does not show its cores' frequencies)"
        top = max(frequencies.values())
        cores = sorted(c for c, f in frequencies.items() if f == top)
        mask = sum(1 << c for c in cores)
        return f"{mask:x}", f"cores {','.join(map(str, cores))} at {top / 1e6:.2f} GHz (of {len(frequencies)})"

    # -- files ----------------------------------------------------------------------------------
    def push(self, local: str, remote: str) -> None:
        self._run(["push", local, remote], self.serial)

    def install_tool(self, binary: str, abi: str) -> str:
        check_binary_abi(binary, abi)
        self.shell(f"mkdir -p {REMOTE_DIR}")
        remote = f"{REMOTE_DIR}/benchmark_model"
        self.push(binary, remote)
        self.shell(f"chmod 755 {remote}")
        return remote


def _adb_failure(text: str) -> bool:
    low = text.lower()
    return any(marker in low for marker in ("error: no devices", "error: device unauthorized", "more than one device",
                                            "no space left on device", "error: device offline"))


def find_binary(binary: Optional[str]) -> str:
    path = binary or os.environ.get(BINARY_ENV)
    if not path:
        raise DeviceError(f"benchmark --adb needs LiteRT's benchmark_model for the phone: pass --benchmark-binary "
                          f"PATH or set {BINARY_ENV}; get {WHERE_TO_GET}")
    if not os.path.isfile(path):
        raise DeviceError(f"--benchmark-binary {path} does not exist; get {WHERE_TO_GET}")
    return path


def elf_machine(path: str) -> Optional[int]:
    """The ELF header's e_machine, or None when ``path`` is no ELF file."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def check_binary_abi(binary: str, abi: str) -> None:
    machine = elf_machine(binary)
    if machine is None:
        raise DeviceError(f"{binary} is not a program for Android (no ELF header); get {WHERE_TO_GET}")
    wanted = ABI_MACHINES.get(abi)
    if wanted is not None and machine != wanted:
        raise DeviceError(f"{binary} is built for {MACHINE_NAMES.get(machine, f'machine {machine}')}, the device runs "
                          f"{abi}: get the {abi} build of benchmark_model")


# -- the tool's output -----------------------------------------------------------------------
_TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
                      r"Warmup \(avg\): ([\d.]+), Inference \(avg\): ([\d.]+)")
_REPLACED = re.compile(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \((\w+)\) node, yielding (\d+) "
                       r"partitions")
_STD = re.compile(r"count=(\d+) first=\d+ curr=\d+ min=(\d+) max=(\d+) avg=([\d.]+) std=(\d+)")


def parse_benchmark_output(text: str) -> dict:
    """The numbers of one ``benchmark_model`` run (ms and MB), and its delegate's account."""
    timings = _TIMINGS.search(text)
    if timings is None:
        last = next((line.strip() for line in reversed(text.strip().splitlines()) if line.strip()), "no output")
        raise DeviceError(f"benchmark_model printed no timings: {last}")
    init_us, first_us, warmup_us, inference_us = (float(v) for v in timings.groups())
    result = {"init_ms": init_us / 1e3, "first_inference_ms": first_us / 1e3, "warmup_avg_ms": warmup_us / 1e3,
              "median_ms": inference_us / 1e3, "avg_ms": inference_us / 1e3}
    runs = _STD.findall(text)
    if runs:
        count, low, high, _, std = runs[-1]
        result.update({"runs": int(count), "min_ms": int(low) / 1e3, "max_ms": int(high) / 1e3,
                       "std_ms": int(std) / 1e3})
    peak = re.search(r"Overall peak memory footprint \(MB\)[^:]*: ([\d.]+)", text) or \
        re.search(r"Peak memory footprint \(MB\): init=[\d.]+ overall=([\d.]+)", text) or \
        re.search(r"Memory footprint delta from the start of the tool \(MB\): init=[\d.]+ overall=([\d.]+)", text)
    if peak:
        result["peak_memory_mb"] = float(peak.group(1))
    size = re.search(r"The input model file size \(MB\): ([\d.]+)", text)
    if size:
        result["model_mb"] = float(size.group(1))
    replaced = _REPLACED.findall(text)
    if replaced:
        nodes, total, name, partitions = replaced[-1]
        result["delegated"] = {"delegate": name, "nodes": int(nodes), "of": int(total) if total else None,
                               "partitions": int(partitions)}
    if re.search(r"graph will be completely executed by the delegate", text):
        result["delegation"] = "complete"
    elif re.search(r"graph will be partially executed by the delegate", text):
        result["delegation"] = "partial"
    elif "delegated" in result:
        whole = result["delegated"]["of"]
        result["delegation"] = "complete" if whole is not None and whole == result["delegated"]["nodes"] else "partial"
    else:
        result["delegation"] = "none"
    return result


def delegation_note(result: dict, delegate: str) -> Optional[str]:
    """A warning when the asked delegate did not take the whole graph (a silent CPU fallback)."""
    if delegate == "none" or result.get("delegation") == "complete":
        return None
    delegated = result.get("delegated")
    if delegated and delegated.get("of"):
        share = f"{delegated['nodes']} of {delegated['of']} nodes in {delegated['partitions']} partition(s)"
    elif delegated:
        share = f"{delegated['nodes']} nodes in {delegated['partitions']} partition(s)"
    else:
        share = "no node"
    return f"the {delegate} delegate took {share}; the rest ran on the CPU's builtin kernels"


def benchmark_on_device(paths: list, threads=(1, 2), delegates=("xnnpack",), runs: int = 50, warmup: int = 5,
                        rounds: int = 3, options: DeviceOptions = DeviceOptions(),
                        progress: Callable[[str], None] = lambda message: None) -> dict:
    """``{"device": {...}, "results": {path: [entry per (threads, delegate)]}}``: every file timed
    on the device in ``rounds`` interleaved passes, the median round of each kept with every
    round's value in ``round_medians_ms``."""
    for path in paths:
        if not os.path.isfile(path):
            raise DeviceError(f"{path} does not exist")
    unknown = [d for d in delegates if d not in DELEGATES]
    if unknown:
        raise DeviceError(f"--delegate must be among {', '.join(DELEGATES)}, got {', '.join(unknown)}")
    binary = find_binary(options.binary)
    device = Device(options)
    info = device.properties()
    tool = device.install_tool(binary, info["abi"])
    mask, cores = (options.cpu_mask.lower().removeprefix("0x"), "cores of --cpu-mask") if options.cpu_mask \
        else device.fastest_cores_mask()
    info.update({"cpu_mask": mask, "cores": cores})
    progress(f"{info['manufacturer']} {info['model']} (Android {info['android']}, {info['soc']}, {info['abi']}); "
             f"pinned to {cores}")
    remote = {}
    for path in paths:
        remote[path] = f"{REMOTE_DIR}/{len(remote)}_{os.path.basename(path)}"
        device.push(path, remote[path])
    measured = {path: {(t, d): [] for t in threads for d in delegates} for path in paths}
    for number in range(1, rounds + 1):
        for path in paths:
            for count in threads:
                for delegate in delegates:
                    progress(f"round {number}/{rounds}: {os.path.basename(path)}, {count} thread(s), {delegate}")
                    command = " ".join(([f"taskset {mask}"] if mask else []) + [
                        tool, f"--graph={remote[path]}", f"--num_threads={count}", f"--num_runs={runs}",
                        f"--warmup_runs={warmup}", "--report_peak_memory_footprint=true",
                        *DELEGATE_FLAGS[delegate]])
                    try:
                        entry = parse_benchmark_output(device.shell(command))
                    except DeviceError as error:
                        raise DeviceError(f"{os.path.basename(path)}, {count} thread(s), {delegate}: {error}") from None
                    measured[path][(count, delegate)].append({"threads": count, "delegate": delegate, **entry})
    device.shell(f"rm -rf {REMOTE_DIR}")
    results = {}
    for path, by_setting in measured.items():
        results[path] = []
        for entries in by_setting.values():
            middle = sorted(entries, key=lambda e: e["median_ms"])[len(entries) // 2]
            note = delegation_note(middle, middle["delegate"])
            results[path].append({**middle, "rounds": rounds, "round_medians_ms": [e["median_ms"] for e in entries],
                                  **({"delegation_note": note} if note else {})})
    return {"device": info, "results": results}


def format_device_results(measured: dict) -> str:
    info = measured["device"]
    lines = [f"{info['manufacturer']} {info['model']}, Android {info['android']}, {info['soc']} ({info['abi']}), "
             f"pinned to {info['cores']}; LiteRT benchmark_model, the median of each file's interleaved rounds",
             "| file | threads | delegate | init ms | first ms | avg ms | min ms | peak MB | delegated |",
             "|" + "---|" * 9]
    notes = []
    for path, entries in measured["results"].items():
        for e in entries:
            delegated = e.get("delegated")
            share = (f"{delegated['nodes']}/{delegated['of']}" if delegated and delegated.get("of")
                     else e.get("delegation", "?"))
            lines.append(f"| {os.path.basename(path)} | {e['threads']} | {e['delegate']} | {e['init_ms']:.1f} | "
                         f"{e['first_inference_ms']:.1f} | {e['median_ms']:.2f} | {e.get('min_ms', float('nan')):.2f} | "
                         f"{e.get('peak_memory_mb', float('nan')):.1f} | {share} |")
            if e.get("delegation_note"):
                notes.append(f"{os.path.basename(path)}, {e['threads']} thread(s): {e['delegation_note']}")
    return "\n".join(lines + [f"note: {note}" for note in notes])
