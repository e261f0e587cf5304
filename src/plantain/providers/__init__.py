"""Remote providers as engines, and routes that fail over between engines.

A provider (``base.py``: :class:`RemoteEngine`) is an engine whose images another service makes:
the Gemini API (``gemini.py``), the OpenAI Images API (``openai.py``) or a task runner
(``replicate.py``). A route (``routing.py``) is an engine made of an ordered list of engines,
tried in turn until one serves. Both are configured by settings (``providers``, ``routes``) and
served by the registry beside the local engines; nothing here is imported for a local engine.
"""
