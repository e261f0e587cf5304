"""The machine a benchmark ran on, for the records: CPU, cores, GPU and library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from plantain.benchmark.memory import gpu_in_use

CPUINFO = Path("/proc/cpuinfo")
LIBRARIES = ("plantain", "torch", "diffusers", "transformers", "pillow")


def machine_info() -> dict[str, Any]:
    """CPU model, cores (all, and those this process may use), torch threads, GPU and versions."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": _torch_threads(),
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in LIBRARIES},
    }


def cpu_model() -> str:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The CUDA device's name; None without one (or when torch is not loaded here)."""
    if not gpu_in_use():
        return None
    torch = sys.modules["torch"]
    return str(torch.cuda.get_device_name(torch.cuda.current_device()))


def describe(info: dict[str, Any]) -> str:
    """One line for the table's header."""
    versions = info["versions"]
    libraries = ", ".join(f"{name} {versions[name]}" for name in ("torch", "diffusers") if versions[name])
    threads = f", torch threads {info['torch_threads']}" if info["torch_threads"] else ""
    return (
        f"{info['cpu']}, {info['usable_cores'] or info['cores']} cores{threads}; "
        f"GPU {info['gpu'] or 'none'}; {libraries}"
    )


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
