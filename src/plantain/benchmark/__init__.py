"""``plantain bench``: a workload run against a Plantain server (live, or started in this process)
or an engine in-process, beside stock diffusers on the same checkpoint.

The pieces are small and light to import (no torch until something runs):

- :mod:`~plantain.benchmark.workload` — what to run and the stop rule, validated;
- :mod:`~plantain.benchmark.load` — a closed-loop driver keeping N requests in flight;
- :mod:`~plantain.benchmark.targets` — the things a request runs on (HTTP task API, engine);
- :mod:`~plantain.benchmark.stock` — the stock diffusers baseline;
- :mod:`~plantain.benchmark.stats` — percentiles, per-repeat figures, min/median/max;
- :mod:`~plantain.benchmark.session` — one benchmark end to end; :mod:`~plantain.benchmark.report`
  prints it and writes it as JSON.
"""

from __future__ import annotations

from plantain.benchmark.stats import Figures, Spread, percentile, summarize
from plantain.benchmark.workload import Workload

__all__ = ["Figures", "Spread", "Workload", "percentile", "summarize"]
