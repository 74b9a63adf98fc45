"""A stand-in for `adb` that runs a device's commands on this machine, for tests/test_device_benchmark.py.

Its device lives in $FAKE_ADB_STATE: devices.txt (the `adb devices` lines), props.json (getprop),
a folder `root/` standing for the device's file system (/data/local/tmp, /sys/devices/system/cpu),
and optional flags: `full` (every push fails as a full /data/local/tmp does). Every command it gets
is appended to commands.log. A `benchmark_model` run is answered by tests/stand_ins/fake_benchmark_model.py."""
import json
import os
import re
import shutil
import subprocess
import sys

STATE = os.environ["FAKE_ADB_STATE"]
ROOT = os.path.join(STATE, "root")


def local(path: str) -> str:
    return re.sub(r"(?<![\w/])(/data/local/tmp|/sys/devices/system/cpu)", lambda m: ROOT + m.group(1), path)


def main(argv: list) -> int:
    with open(os.path.join(STATE, "commands.log"), "a") as log:
        log.write(json.dumps(argv) + "\n")
    serial = None
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
    devices = [line.split() for line in open(os.path.join(STATE, "devices.txt")).read().splitlines() if line.strip()]
    if argv == ["devices"]:
        print("List of devices attached")
        for name, state in devices:
            print(f"{name}\t{state}")
        return 0
    ready = [name for name, state in devices]
    if serial is None and len(ready) > 1:
        print("adb: error: more than one device/emulator", file=sys.stderr)
        return 1
    if not ready:
        print("adb: error: no devices/emulators found", file=sys.stderr)
        return 1
    if serial is not None and serial not in ready:
        print(f"adb: error: device '{serial}' not found", file=sys.stderr)
        return 1
    if argv[0] == "push":
        if os.path.exists(os.path.join(STATE, "full")):
            print(f"adb: error: failed to copy '{argv[1]}' to '{argv[2]}': remote write failed: No space left on device",
                  file=sys.stderr)
            return 1
        target = local(argv[2])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(argv[1], target)
        print(f"{argv[1]}: 1 file pushed, 0 skipped.")
        return 0
    if argv[0] == "shell":
        command = argv[1]
        if command.startswith("getprop "):
            print(json.load(open(os.path.join(STATE, "props.json"))).get(command.split()[1], ""))
            return 0
        command = re.sub(r"^taskset [0-9a-fA-F]+ ", "", command)  # pinning is the phone's; logged above
        if "/benchmark_model " in command:
            tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_benchmark_model.py")
            words = command.split()
            return subprocess.call([sys.executable, tool, *words[1:]], env={**os.environ})
        return subprocess.call(["sh", "-c", local(command)])
    print(f"fake adb: unknown command {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
