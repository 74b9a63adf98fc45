"""The CPU a speed figure was measured on: its model, core count and the instruction sets that
decide which kernels TensorFlow and XNNPACK run (AVX2 only, AVX-512 with VNNI / BF16, AMX).
Hosts differ between sessions, so every speed figure the kit prints names its CPU."""
from __future__ import annotations

import os
import platform

# The flags (as /proc/cpuinfo spells them) that change which kernels run, in the order printed.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple:
    """``(model name, set of flags)`` of the first processor listed, or ``("", set())``."""
    model, flags = "", set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def cpu_description(path: str = "/proc/cpuinfo") -> str:
    """One line: e.g. ``AMD EPYC, 2 cores, avx2 fma`` or ``Intel(R) Xeon(R) ..., 2 cores, avx2 fma
    avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile``."""
    model, flags = _cpuinfo(path)
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    present = [flag for flag in KERNEL_FLAGS if flag in flags]
    return f"{model}, {cores} cores, {' '.join(present) if present else 'no AVX2/AVX-512/AMX'}"


def has_native_bfloat16(path: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where mixed bfloat16 pays."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo(path)[1])
