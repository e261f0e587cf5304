"""The blind arena: pairs of anonymised results, votes and ratings (docs/arena.md)."""
