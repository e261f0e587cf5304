"""The ``plantain`` command: ``main`` parses the command line; one module per command group."""

from plantain.cli.main import main

__all__ = ["main"]
