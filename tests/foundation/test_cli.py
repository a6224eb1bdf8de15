"""The ``voxdesk`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.voxdesk_cli import run_voxdesk as _run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"VOXDESK_DATABASE__URL": "nonsense"}, "VOXDESK_DATABASE__URL"),
        ({"VOXDESK_PIPELINE__ASR__BACKEND": "nope"}, "VOXDESK_PIPELINE__ASR__BACKEND: must be one of"),
        ({"VOXDESK_TYPO": "1"}, "VOXDESK_TYPO: not a known setting"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    result = _run(["migrate"], tmp_path, env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_migrate_and_create_admin_from_stdin(tmp_path: Path) -> None:
    migrated = _run(["migrate"], tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "database at revision" in migrated.stdout
    created = _run(["create-admin", "--email", "Boss@Example.com"], tmp_path, stdin="correct horse battery\n")
    assert created.returncode == 0, created.stderr
    assert "admin created" in created.stdout
    assert "correct horse" not in created.stdout + created.stderr
    user_id = created.stdout.split("admin created: ")[1].strip()
    with closing(sqlite3.connect(tmp_path / "data" / "voxdesk.db")) as db:
        entries = db.execute(
            "SELECT actor_user_id, actor_role, action, target_type, target_id, outcome, detail FROM audit_log"
        ).fetchall()
    assert [row[:6] for row in entries] == [(None, "cli", "users.create", "user", user_id, "success")]
    assert json.loads(entries[0][6]) == {"role": "admin", "invited": False}
    again = _run(["create-admin", "--email", "boss@example.com"], tmp_path, stdin="correct horse battery\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    weak = _run(["create-admin", "--email", "other@example.com"], tmp_path, stdin="short\n")
    assert weak.returncode == 1
    assert "at least" in weak.stderr


def test_doctor_reports_each_part(tmp_path: Path) -> None:
    assert _run(["migrate"], tmp_path).returncode == 0
    result = _run(["doctor"], tmp_path)
    out = result.stdout
    assert "[ok  ] database: sqlite, reachable" in out
    assert "[ok  ] cache: memory" in out
    assert "program flite" in out
    assert "result:" in out


def test_doctor_names_an_unreachable_database(tmp_path: Path) -> None:
    result = _run(["doctor"], tmp_path, {"VOXDESK_DATABASE__URL": "postgresql+psycopg://nobody:x@127.0.0.1:1/none"})
    assert result.returncode == 1
    assert "[FAIL] database" in result.stdout
    assert "fix:" in result.stdout


def test_help_lists_commands(tmp_path: Path) -> None:
    result = _run(["--help"], tmp_path)
    for command in ("serve", "migrate", "create-admin", "ingest", "doctor"):
        assert command in result.stdout
