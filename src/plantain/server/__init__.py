"""The HTTP server: the app and its middleware (API keys, body limit), health and metrics."""
