"""Engines: one file per model family, one contract (``base.py``), one registry."""
