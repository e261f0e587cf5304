"""nanobananaapi.dev's image API: ``POST /v1/images/generate`` (docs/nanobananaapi.md)."""
