"""spandrel imports without torchvision, and leaves no trace of the placeholder it needed: a
library that probes for torchvision afterwards (transformers) must still see none."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from plantain.upscale.spandrel_import import import_spandrel


def test_torchvision_is_not_installed() -> None:
    """The premise: were torchvision installed, the placeholders would never be used."""
    assert importlib.util.find_spec("torchvision") is None


def test_spandrel_imports_and_the_placeholders_are_gone() -> None:
    spandrel = import_spandrel()
    assert hasattr(spandrel, "ModelLoader")
    assert not [name for name in sys.modules if name.split(".")[0] == "torchvision"]
    assert importlib.util.find_spec("torchvision") is None
    assert import_spandrel() is spandrel  # imported once


def test_a_torchvision_function_says_what_is_missing() -> None:
    import_spandrel()
    lama = importlib.import_module("spandrel.architectures.LaMa.__arch.LaMa")
    with pytest.raises(RuntimeError, match="torchvision is not installed"):
        lama.rotate(None, 90)


def test_transformers_imported_afterwards_sees_no_torchvision() -> None:
    """In a fresh interpreter, so transformers' availability probe runs after spandrel's import
    (in this one transformers may have been imported by other tests first)."""
    script = textwrap.dedent(
        """
        import sys
        from plantain.upscale.spandrel_import import import_spandrel
        assert "transformers" not in sys.modules
        import_spandrel()
        from transformers.utils import is_torchvision_available
        print(is_torchvision_available())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
