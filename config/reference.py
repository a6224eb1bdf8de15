"""The configuration reference, generated from ``Settings`` so the README cannot drift from the code."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from config.settings import Settings


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None)) + " (optional)"
    if origin is list:
        return "list of " + _type_name(typing.get_args(annotation)[0])
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]  # our factories take no arguments
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        return "(development placeholder)"
    if value is None:
        return "unset"
    if value == []:
        return "[]"
    return f"`{value}`"


def iter_settings(model: type[BaseModel] = Settings, prefix: str = "VOXDESK_") -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(variable, type, default, description)`` for every leaf setting."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from iter_settings(annotation, f"{prefix}{name.upper()}__")
            continue
        yield f"{prefix}{name.upper()}", _type_name(annotation), _default(field), field.description or ""


def render_markdown() -> str:
    """A Markdown table of every setting."""
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{var}` | {typ} | {default} | {desc} |" for var, typ, default, desc in iter_settings()]
    return "\n".join(lines)
