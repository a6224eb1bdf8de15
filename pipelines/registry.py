"""Backend registries: a backend name maps to ``module:Class``, imported only when chosen.

Adding a backend is one new file beside its ``base.py`` and one entry in that room's registry dict;
core code never branches on a vendor name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


class UnknownBackendError(ValueError):
    """The configured backend name is not in the registry."""


def resolve_backend(registry: Mapping[str, str], name: str, base: type) -> Any:
    """Import and return the class registered under ``name``.

    Args:
        registry: Backend name → ``"package.module:ClassName"``.
        name: The configured backend name.
        base: The class every registered backend must subclass.

    Returns:
        The backend class (a subclass of ``base``; annotate the variable that receives it).

    Raises:
        UnknownBackendError: ``name`` is not registered.
        TypeError: the registered class does not subclass ``base``.
    """
    try:
        target = registry[name]
    except KeyError:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of {', '.join(sorted(registry))}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{target} is not a {base.__name__}")
    return cls
