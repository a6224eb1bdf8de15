"""A Voxdesk API process for kill -9 tests: ``python -m tests.integrations.serve_child PORT`` (settings from env)."""

from __future__ import annotations

import sys

import uvicorn

from config import Settings
from control_api.app import create_app

if __name__ == "__main__":
    uvicorn.run(create_app(Settings(_env_file=None)), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")  # type: ignore[call-arg]
