"""The licence each engine's weights come under, and the gate for those an operator must accept.

Every engine card (``plantain engines``, ``GET /v1/engines``, docs/engines.md) names its licence
and whether it allows commercial use. A licence marked ``gated`` is one the operator must accept
by name (setting ``accept_licences``) before the engine serves a request: Qwen-Image-2.1's Qwen
Research License forbids commercial use, which a server's users cannot see from the API alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from plantain.errors import LicenceNotAcceptedError
from plantain.settings import Settings

if TYPE_CHECKING:
    from plantain.engines.base import Engine


@dataclass(frozen=True)
class Licence:
    id: str  # as the setting accept_licences names it, for gated ones
    name: str
    url: str
    commercial: bool  # whether the licence allows commercial use of the outputs and the model
    gated: bool = False  # served only once the operator lists ``id`` in accept_licences

    def describe(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "url": self.url, "commercial_use": self.commercial}


APACHE_2 = Licence("apache-2.0", "Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0", commercial=True)

QWEN_RESEARCH = Licence(
    "qwen-research",
    "Qwen Research License",
    "https://huggingface.co/Qwen/Qwen-Image-2.1/blob/main/LICENSE",
    commercial=False,
    gated=True,
)


def check_accepted(engine: str, licence: Licence | None, settings: Settings) -> None:
    """Refuse ``engine`` while its gated licence is not in the setting ``accept_licences``."""
    if not _unaccepted(licence, settings):
        return
    assert licence is not None
    raise LicenceNotAcceptedError(
        f"engine {engine} is under the {licence.name}{_use(licence)} ({licence.url}), which this "
        f"server's operator has not accepted; an operator who has read it and accepts it adds "
        f"{licence.id!r} to the setting accept_licences (PLANTAIN_ACCEPT_LICENCES='[\"{licence.id}\"]')",
        field="engine",
    )


def _use(licence: Licence) -> str:
    return "" if licence.commercial else ", which does not allow commercial use"


def licence_refused(engine: Engine) -> bool:
    """Whether ``engine`` refuses every request for its licence (a server still starts with it)."""
    return _unaccepted(engine.licence, engine.settings)


def _unaccepted(licence: Licence | None, settings: Settings) -> bool:
    return licence is not None and licence.gated and licence.id not in settings.accept_licences
