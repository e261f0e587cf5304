"""The planner stage (docs/planner.md): a local open-weight instruction model, loaded through
transformers like the engines' text encoders, that runs before an engine to rewrite the request's
prompt in the way that engine's family reads best and to write the short text that goes beside
the images in the answer.

``model.py`` finds and loads the checkpoint (never downloading) and generates; ``prompts.py``
holds the system prompts; ``stage.py`` turns a request into a :class:`~plantain.types.PlanResult`;
``tiny.py`` builds the random-weight checkpoint tests and demos load by the real path.
"""
