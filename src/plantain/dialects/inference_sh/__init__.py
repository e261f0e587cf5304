"""inference.sh's app API: ``/apps/run`` (their SDK), ``/v1/apps/{owner}/{app}/run``, ``/tasks/{id}``."""
