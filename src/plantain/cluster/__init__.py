"""Scale-out (docs/deploy.md): worker processes on a shared store, and the Ray Serve deployment
that places them on GPUs. Nothing here is imported by the embedded default."""
