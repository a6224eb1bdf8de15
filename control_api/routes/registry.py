"""Every router of the control plane, in one list that ``create_app`` mounts.

Each resource adds its router here (one line), so no two features edit ``app.py``.
"""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
