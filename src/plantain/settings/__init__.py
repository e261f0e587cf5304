"""One Settings object: every knob, read from ``PLANTAIN_*`` environment variables or passed in
(``model.py``; the scale-out ones in ``scaleout.py``, the checks that need code in ``checks.py``)."""

from plantain.settings.checks import REGIONAL_CUDA_GRAPHS
from plantain.settings.model import SECRET_SETTINGS, Settings, load_settings

__all__ = ["REGIONAL_CUDA_GRAPHS", "SECRET_SETTINGS", "Settings", "load_settings"]
