"""What FastAPI cannot see for the OpenAPI document (``GET /openapi.json``).

Routes read their bodies themselves, so that every error names the field as the caller's dialect
writes it; FastAPI therefore sees no request body. Each route that takes one declares it here,
from the dialect's wire models, and :func:`install` puts those models in the document's
``components``. The same goes for path parameters a route matches but does not read (Vertex's
``project`` and ``location``) and headers it reads from the request (``Prefer``). A declared
parameter FastAPI refuses is a 400 in the dialect's envelope (:mod:`plantain.dialects.parameters`),
not FastAPI's 422, and the document says so.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"
BINARY = {"type": "string", "format": "binary"}
BAD_INPUT = {"description": "A bad parameter or body: an error in the dialect's envelope naming it"}

_models: dict[str, type[BaseModel]] = {}  # every model a body refers to, by its component name


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: a JSON body of ``model``'s shape."""
    return _body({"application/json": {"schema": _ref(model)}})


def form_body(
    model: type[BaseModel] | None,
    files: dict[str, Any],
    required: list[str],
    raw_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A route's ``openapi_extra``: a multipart form of ``model``'s fields (text, each value
    written as its type: ``n=2``) and the file fields ``files`` (name -> schema); or, for each
    of ``raw_types``, the file's bytes as the whole body."""
    schema = model.model_json_schema(ref_template=REF) if model is not None else {}
    fields = {name: _not_null(field) for name, field in schema.get("properties", {}).items()}
    form = {
        "type": "object",
        "properties": {**fields, **files},
        "required": sorted({*schema.get("required", []), *required}),
    }
    raw = {media_type: {"schema": BINARY} for media_type in raw_types}
    return _body({"multipart/form-data": {"schema": form}, **raw})


def path_parameters(path: str) -> dict[str, Any]:
    """A route's ``openapi_extra``: the ``{name}`` segments of ``path``, which the route matches
    but does not read (any value is served the same)."""
    names = re.findall(r"{(\w+)}", path)
    return {"parameters": [_parameter(name, "path", {"type": "string"}, required=True) for name in names]}


def header_parameters(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A route's ``openapi_extra``: optional headers it reads from the request itself (name ->
    the schema of its value)."""
    return {"parameters": [_parameter(name, "header", schema=schema) for name, schema in schemas.items()]}


def query_parameters(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A route's ``openapi_extra``: optional query parameters it reads from the request itself
    (name -> the schema of its value)."""
    return {"parameters": [_parameter(name, "query", schema=schema) for name, schema in schemas.items()]}


def merge(*extras: dict[str, Any]) -> dict[str, Any]:
    """Several ``openapi_extra`` parts as one (their parameters together)."""
    merged: dict[str, Any] = {}
    for extra in extras:
        for key, value in extra.items():
            merged[key] = merged.get(key, []) + value if key == "parameters" else value
    return merged


def install(app: FastAPI) -> None:
    """Make ``app``'s document complete: the body models in ``components``, and 400 where FastAPI
    would have said 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _complete(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema([(model, "validation") for model in _models.values()], ref_template=REF)
    components.update(defs.get("$defs", {}))
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                del responses["422"]  # FastAPI's refusal of a parameter: a 400 here
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", BAD_INPUT)
    for unused in ("HTTPValidationError", "ValidationError"):  # only those 422s referred to them
        components.pop(unused, None)
    return document


def _body(content: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": content}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    _models[model.__name__] = model
    return {"$ref": REF.format(model=model.__name__)}


def _parameter(name: str, where: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field's schema without ``null``: a text field is sent or left out, never null."""
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    if len(options) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    return {**rest, **options[0]}
