"""Serving latency and throughput beside stock diffusers: ``plantain bench`` as a script.

    python bench/serving.py -e tiny -s 512 -c 8 --json tiny-512-c8.json
    python bench/serving.py -e flux2-klein-4b -s 1K -c 1 --json klein-1k.json

Every option of ``plantain bench`` applies (``--help`` lists them); docs/performance.md says
what each figure means and holds the published tables.
"""

from __future__ import annotations

import sys

from plantain.cli.main import cli

if __name__ == "__main__":
    cli(["bench", *sys.argv[1:]], prog_name="plantain")
