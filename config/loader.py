"""Load ``Settings`` and turn validation failures into one readable line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from config.settings import Settings


class SettingsError(Exception):
    """Settings could not be loaded; ``str(err)`` names the variable and the accepted values."""


def _env_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-after")]
    return "VOXDESK_" + "__".join(p.upper() for p in parts) if parts else "VOXDESK_*"


def describe(err: ValidationError) -> str:
    """Describe a settings ``ValidationError`` in one line per problem, naming each variable."""
    lines: list[str] = []
    for item in err.errors():
        loc = tuple(item.get("loc", ()))
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        ctx: dict[str, Any] = item.get("ctx") or {}
        if item.get("type") == "literal_error" and "expected" in ctx:
            message = f"must be one of {ctx['expected']}"
        if item.get("type") == "extra_forbidden":
            message = "is not a known setting"
        name = _env_name(loc)
        value = item.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) and "secret" not in name.lower() else ""
        lines.append(f"{name}: {message}{shown}")
    return "; ".join(lines)


# Variables the test harness and scripts use; they are not settings.
_NOT_SETTINGS_PREFIX = "VOXDESK_TEST_"


def known_variables() -> set[str]:
    """Every ``VOXDESK_*`` variable name a setting or a whole section answers to."""
    from config.reference import iter_settings

    names = {var for var, _type, _default, _desc in iter_settings()}
    sections: set[str] = set()
    for name in names:
        parts = name.split("__")
        sections.update("__".join(parts[:i]) for i in range(1, len(parts)))
    return names | sections


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``VOXDESK_*`` variables in ``environ`` that no setting answers to (typos, removed settings)."""
    known = known_variables()
    return sorted(
        key
        for key in environ
        if key.upper().startswith("VOXDESK_")
        and not key.upper().startswith(_NOT_SETTINGS_PREFIX)
        and key.upper() not in known
    )


def load_settings(**overrides: Any) -> Settings:
    """Build ``Settings`` from the environment, raising ``SettingsError`` with a readable message."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError(
            f"invalid settings: {', '.join(unknown)}: not a known setting (see `voxdesk config-reference`)"
        )
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise SettingsError("invalid settings: " + describe(err)) from None
