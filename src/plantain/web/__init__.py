"""The web pages ``plantain serve`` answers at ``/``: the playground and the arena (docs/web.md)."""
