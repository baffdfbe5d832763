"""Pydantic models inside an OpenAPI document: both descriptions (``admin_openapi.py`` and
``publisher_openapi.py``) write a model class wherever a schema goes, and these two steps
turn the classes into ``$ref``s and the schemas they point to, so the two documents cannot
resolve models in two different ways."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

Found = dict[type[BaseModel], JsonSchemaMode]


def resolve(value: Any, mode: JsonSchemaMode, found: Found) -> Any:
    """A copy with each model class replaced by its $ref; ``found`` collects the classes and
    the mode their schema is for (answers: serialization; request bodies: validation)."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        found[value] = mode
        return {"$ref": f"#/components/schemas/{value.__name__}"}
    if isinstance(value, dict):
        return {k: resolve(v, "serialization" if k == "responses" else mode, found)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [resolve(v, mode, found) for v in value]
    return value


def component_schemas(found: Found) -> dict[str, Any]:
    """``components/schemas``: every model ``resolve`` met, and the models they hold."""
    _, components = models_json_schema(
        sorted(found.items(), key=lambda pair: pair[0].__name__),
        ref_template="#/components/schemas/{model}",
    )
    return dict(components.get("$defs", {}))
