"""Importing spandrel without torchvision.

spandrel (the library that reads super-resolution checkpoints of many architectures) imports
torchvision at import time for two architectures only, LaMa (inpainting) and RestoreFormer (face
restoration); no upscaler uses it. torchvision is not a dependency of Plantain: the only wheel of
it for the locked torch is a CUDA build that fails at import on a CPU machine. So, when torchvision
is not installed, :func:`import_spandrel` puts placeholder modules in ``sys.modules`` for the
length of ``import spandrel`` and removes them straight after: transformers probes torchvision
with ``importlib.util.find_spec`` and must never find the placeholder (it would then try to use
it). Calling a placeholder function (only a LaMa or RestoreFormer model would) raises a
RuntimeError that names torchvision.
"""

from __future__ import annotations

import enum
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import NoReturn

# torchvision's modules that spandrel 0.4.2 imports, outermost first (each needs its parent).
_PLACEHOLDERS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
# The names spandrel takes from torchvision.transforms.functional.
_FUNCTIONS = ("rotate", "normalize")

_LOCK = threading.Lock()  # one import at a time: the placeholders are process-global while present


class InterpolationMode(enum.Enum):
    """Stands in for torchvision's enum of the same name (LaMa's module names it at import)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _missing(name: str) -> object:
    def missing(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(
            f"torchvision.transforms.functional.{name} is needed by this spandrel model "
            "(LaMa or RestoreFormer, not an upscaler), and torchvision is not installed"
        )

    missing.__name__ = name
    return missing


def _placeholder_modules() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for name in _PLACEHOLDERS:
        module = ModuleType(name, "Placeholder for torchvision while spandrel is imported (plantain).")
        is_package = name != _PLACEHOLDERS[-1]
        module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=is_package)
        if is_package:
            module.__path__ = []
        modules[name] = module
    functional = modules[_PLACEHOLDERS[-1]]
    # What spandrel takes from them; set through __dict__, as a bare module declares no attributes.
    vars(functional).update(
        {name: _missing(name) for name in _FUNCTIONS}, InterpolationMode=InterpolationMode
    )
    vars(modules["torchvision"])["transforms"] = modules["torchvision.transforms"]
    vars(modules["torchvision.transforms"])["functional"] = functional
    return modules


def import_spandrel() -> ModuleType:
    """The ``spandrel`` module, imported with torchvision placeholders when torchvision is absent.

    Returned as a plain module (spandrel ships no type information), so its API is used untyped."""
    loaded = sys.modules.get("spandrel")
    if loaded is not None:
        return loaded
    with _LOCK:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        if importlib.util.find_spec("torchvision") is not None:
            return importlib.import_module("spandrel")
        placeholders = _placeholder_modules()
        sys.modules.update(placeholders)
        try:
            return importlib.import_module("spandrel")
        finally:
            for name in placeholders:
                if sys.modules.get(name) is placeholders[name]:
                    del sys.modules[name]
