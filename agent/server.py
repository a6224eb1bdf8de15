"""Composition root of ``voxdesk serve``: the control plane plus the voice side, in one process."""

from __future__ import annotations

from fastapi import FastAPI

from config import Settings
from control_api.app import create_app
from control_api.logging_setup import configure_logging


def build_app(settings: Settings) -> FastAPI:
    """Build the whole server from ``settings``."""
    configure_logging(level=settings.logging.level, json_logs=settings.logging.json_logs)
    return create_app(settings)
