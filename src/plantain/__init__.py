"""Plantain: a self-hosted image generation and editing server with open-weight models."""

__version__ = "0.1.0"
