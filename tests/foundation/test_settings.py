"""Settings: defaults run offline, bad values name the variable and the accepted values."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings, SettingsError, load_settings
from config.loader import unknown_variables
from config.reference import render_markdown
from config.settings import DEV_SECRET

pytestmark = pytest.mark.unit


def test_defaults_are_embedded_and_offline(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert s.database_url.endswith("voxdesk.db")
    assert s.redis.url is None
    assert s.pipeline.asr.backend == "pocketsphinx"
    assert s.pipeline.llm.backend == "extractive"
    assert s.pipeline.tts.backend == "flite"
    assert s.knowledge.store == "embedded"


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXDESK_PIPELINE__TTS__BACKEND", "espeak-ng")
    monkeypatch.setenv("VOXDESK_DATABASE__URL", "postgresql+psycopg://u:p@127.0.0.1/db")
    s = load_settings(_env_file=None)
    assert s.pipeline.tts.backend == "espeak-ng"
    assert s.database_url == "postgresql+psycopg://u:p@127.0.0.1/db"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("VOXDESK_DATABASE__URL", "nonsense", "VOXDESK_DATABASE__URL: not a SQLAlchemy URL"),
        ("VOXDESK_DATABASE__URL", "mysql://x/y", "accepted: sqlite+aiosqlite, postgresql+psycopg"),
        ("VOXDESK_PIPELINE__ASR__BACKEND", "foo", "must be one of 'pocketsphinx', 'faster-whisper' or 'openai'"),
        ("VOXDESK_RATE_LIMITS__API", "lots", "VOXDESK_RATE_LIMITS__API: not a rate limit"),
        ("VOXDESK_SERVER__PORT", "99999", "VOXDESK_SERVER__PORT"),
        ("VOXDESK_PIPELINE__ASR__BACKEN", "x", "VOXDESK_PIPELINE__ASR__BACKEN: not a known setting"),
        (
            "VOXDESK_PIPELINE__ASR__ACOUSTIC_MODEL",
            "/nonexistent/model",
            "not a pocketsphinx acoustic model directory (no mdef, means, variances)",
        ),
    ],
)
def test_bad_values_give_one_readable_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert "Traceback" not in message


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXDESK_ENV", "production")
    with pytest.raises(SettingsError, match="VOXDESK_AUTH__SECRET_KEY must be set"):
        load_settings(_env_file=None)
    monkeypatch.setenv("VOXDESK_AUTH__SECRET_KEY", "x" * 40)
    with pytest.raises(SettingsError, match="VOXDESK_INTEGRATIONS__SECRET_KEY must be set"):
        load_settings(_env_file=None)
    monkeypatch.setenv("VOXDESK_INTEGRATIONS__SECRET_KEY", "y" * 40)
    assert load_settings(_env_file=None).auth.secret_key.get_secret_value() != DEV_SECRET


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXDESK_AUTH__SECRET_KEY", "short-secret")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert "short-secret" not in str(info.value)


def test_harness_variables_are_not_settings() -> None:
    env = {"VOXDESK_TEST_POSTGRES_URL": "x", "VOXDESK_DATABASE__URL": "y", "VOXDESK_NOPE": "z", "PATH": "/bin"}
    assert unknown_variables(env) == ["VOXDESK_NOPE"]


def test_reference_lists_every_setting() -> None:
    table = render_markdown()
    for name in (
        "VOXDESK_DATA_DIR",
        "VOXDESK_DATABASE__URL",
        "VOXDESK_REDIS__URL",
        "VOXDESK_ENV",
        "VOXDESK_PIPELINE__LLM__BASE_URL",
        "VOXDESK_KNOWLEDGE__SCORE_THRESHOLD",
    ):
        assert f"`{name}`" in table
