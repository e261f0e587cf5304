"""Peak memory of this process over one phase of a benchmark.

CPU: the resident set's high-water mark. On Linux it is read from ``/proc/self/status``
(``VmHWM``) and reset at the start of each phase through ``/proc/self/clear_refs``, so each
repeat reports its own peak; elsewhere, or where the reset is refused, ``getrusage`` gives the
peak since the process started (``scope`` says which). GPU: torch's allocator peak, reset per
phase, when CUDA is in use.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from types import ModuleType
from typing import Literal

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK_RSS = "5"  # clear_refs: reset the peak resident set size to the current one

Scope = Literal["phase", "process"]


class PeakMemory:
    """``reset()`` at the start of a phase, ``rss()`` and ``gpu()`` at its end."""

    def __init__(self) -> None:
        self.scope: Scope = "process"

    def reset(self) -> None:
        self.scope = "phase" if _reset_rss() else "process"
        torch = _cuda_torch()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()

    def rss(self) -> int:
        """Peak resident bytes (of this phase, or of the process: see :attr:`scope`)."""
        if self.scope == "phase":
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                return hwm * 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes there, KiB here

    def gpu(self) -> int | None:
        """Peak bytes torch allocated on the GPU; None without CUDA."""
        torch = _cuda_torch()
        return None if torch is None else int(torch.cuda.max_memory_allocated())


def gpu_in_use() -> bool:
    return _cuda_torch() is not None


def _cuda_torch() -> ModuleType | None:
    """torch, when something in this process already imported it and CUDA is there (a
    benchmark of a remote server must not import it just to ask)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch


def _reset_rss() -> bool:
    try:
        CLEAR_REFS.write_text(RESET_PEAK_RSS)
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _status_kib(key: str) -> int | None:
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None
