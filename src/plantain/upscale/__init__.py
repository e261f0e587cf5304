"""Sizes an engine cannot make natively (docs/upscaling.md): a super-resolution network enlarges
the engine's image (``model.py``), optionally repainted tile by tile by the engine (``refine.py``).

Nothing is imported here, so naming the package costs no torch or spandrel import.
"""
