"""Personas: versioned rows, one active version per name; every edit is a new version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Persona
from control_api.problems import ProblemError

DEFAULT_PERSONA = "default"
DEFAULT_DISPLAY_NAME = "Ava"
DEFAULT_GREETING = "Hello, thanks for calling the help desk. I'm Ava, a virtual assistant. How can I help you today?"
DEFAULT_CONSENT_NOTICE = "This call is recorded and transcribed to help us serve you; by continuing you agree to this."


@dataclass(frozen=True, slots=True)
class Voices:
    """The voices a persona can be given: what the running synthesiser really has.

    Attributes:
        engine: The synthesiser's registered name (e.g. ``flite``).
        voices: Its installed voices, sorted.
        default: The configured voice calls get when the persona names none (None: the engine's own default).
    """

    engine: str
    voices: Sequence[str]
    default: str | None


class VoicePreview(Protocol):
    """Speaks a text in one of the voice engine's voices (the voice process registers it: :func:`register_preview`).

    The control plane never imports the voice side; the same synthesiser the calls use speaks the preview.
    """

    def voices(self) -> Voices:
        """The installed voices of the running synthesiser."""
        ...

    async def speak(self, text: str, voice: str | None) -> tuple[bytes, int]:
        """16-bit mono PCM of ``text`` in ``voice`` (one of :meth:`voices`; None: the default) and its rate."""
        ...


_preview: VoicePreview | None = None


def register_preview(preview: VoicePreview | None) -> None:
    """Install (or remove, with ``None``) the voice process's preview synthesiser."""
    global _preview  # one synthesiser per process, set at start-up
    _preview = preview


def voice_preview() -> VoicePreview:
    """The registered preview synthesiser; 503 problem when no voice runs in this process (or not yet)."""
    if _preview is None:
        raise ProblemError(503, "No voice engine is running in this server yet.", type_="voice-unavailable")
    return _preview


async def list_active(session: AsyncSession) -> list[Persona]:
    """The active version of every persona, by name."""
    rows = await session.execute(select(Persona).where(Persona.is_active.is_(True)).order_by(Persona.name))
    return list(rows.scalars())


async def list_versions(session: AsyncSession, name: str) -> list[Persona]:
    """Every version of persona ``name``, newest first; 404 when there is none."""
    rows = await session.execute(select(Persona).where(Persona.name == name).order_by(Persona.version.desc()))
    versions = list(rows.scalars())
    if not versions:
        raise ProblemError(404, "No persona with this name.", type_="not-found")
    return versions


async def get_active(session: AsyncSession, name: str) -> Persona:
    """The active version of persona ``name``; 404 when absent."""
    row = await session.execute(select(Persona).where(Persona.name == name, Persona.is_active.is_(True)))
    persona = row.scalars().first()
    if persona is None:
        raise ProblemError(404, "No persona with this name.", type_="not-found")
    return persona


async def find_active(session: AsyncSession, name: str) -> Persona | None:
    """The active version of persona ``name``, or None."""
    row = await session.execute(select(Persona).where(Persona.name == name, Persona.is_active.is_(True)))
    return row.scalars().first()


async def ensure_known(session: AsyncSession, name: str) -> None:
    """404 problem unless persona ``name`` exists: a stored version, or the default persona.

    The default persona is what every call falls back to; the voice server seeds it on its first start, so
    settings hung on it (its handoff policy) may be read and set before that.
    """
    if name == DEFAULT_PERSONA:
        return
    found = await session.execute(select(Persona.id).where(Persona.name == name).limit(1))
    if found.first() is None:
        raise ProblemError(404, "No persona with this name.", type_="not-found")


async def create(
    session: AsyncSession,
    *,
    name: str,
    greeting: str,
    consent_notice: str,
    display_name: str = DEFAULT_DISPLAY_NAME,
    voice: str | None = None,
    language: str = "en",
    instructions: str = "",
    created_by: str | None = None,
) -> Persona:
    """Create persona ``name`` at version 1 (active); 409 when the name exists. Commits."""
    exists = await session.execute(select(func.count()).select_from(Persona).where(Persona.name == name))
    if int(exists.scalar_one()) > 0:
        raise ProblemError(409, "A persona with this name already exists; PUT a new version.", type_="conflict")
    persona = Persona(
        name=name,
        version=1,
        is_active=True,
        display_name=display_name,
        greeting=greeting,
        consent_notice=consent_notice,
        voice=voice,
        language=language,
        instructions=instructions,
        created_by=created_by,
    )
    session.add(persona)
    await session.commit()
    return persona


async def new_version(
    session: AsyncSession, name: str, *, changes: dict[str, object], created_by: str | None = None
) -> Persona:
    """Store an edit of persona ``name`` as a new active version (the previous one is kept). Commits."""
    current = await get_active(session, name)
    top = await session.execute(select(func.max(Persona.version)).where(Persona.name == name))
    version = int(top.scalar_one() or 0) + 1
    fields: dict[str, object] = {
        "display_name": current.display_name,
        "greeting": current.greeting,
        "consent_notice": current.consent_notice,
        "voice": current.voice,
        "language": current.language,
        "instructions": current.instructions,
    }
    for key, value in changes.items():
        if key not in fields:
            raise ProblemError(422, f"Unknown persona field {key!r}.", type_="validation-error")
        fields[key] = value
    await session.execute(update(Persona).where(Persona.name == name).values(is_active=False))
    persona = Persona(name=name, version=version, is_active=True, created_by=created_by)
    for key, value in fields.items():
        setattr(persona, key, value)
    session.add(persona)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ProblemError(409, "The persona changed meanwhile; retry the edit.", type_="conflict") from None
    return persona


async def ensure_default(session: AsyncSession) -> Persona:
    """The active default persona, seeded on first start. Commits when it seeds."""
    persona = await find_active(session, DEFAULT_PERSONA)
    if persona is not None:
        return persona
    return await create(
        session,
        name=DEFAULT_PERSONA,
        greeting=DEFAULT_GREETING,
        consent_notice=DEFAULT_CONSENT_NOTICE,
        display_name=DEFAULT_DISPLAY_NAME,
    )


def spoken_greeting(persona: Persona) -> str:
    """What the agent says first: the greeting followed by the recording/consent notice."""
    return f"{persona.greeting.strip()} {persona.consent_notice.strip()}"
