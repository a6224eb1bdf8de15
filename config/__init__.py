"""Configuration: the one ``Settings`` object and a loader with readable errors."""

from config.loader import SettingsError, load_settings
from config.settings import Settings

__all__ = ["Settings", "SettingsError", "load_settings"]
