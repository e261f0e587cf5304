"""A terminal progress bar over denoising steps (quiet when stderr is not a terminal)."""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm


class StepBar:
    """Feeds ``Engine.run``'s step callback into a tqdm bar on stderr."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: tqdm | None = None

    def update(self, step: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self._label, unit="step", leave=False, disable=None)
        self._bar.n = step
        self._bar.refresh()

    def __enter__(self) -> StepBar:
        return self

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
