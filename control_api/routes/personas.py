"""Personas: list, read, create and edit (each edit stores a new active version)."""

from __future__ import annotations

import io
import wave
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from control_api.db.models import User
from control_api.deps import CurrentUser, SessionDep, StateDep, actor_for, require
from control_api.problems import ProblemError
from control_api.ratelimit import hit
from control_api.rbac import Permission
from control_api.schemas.personas import PersonaCreate, PersonaPublic, PersonasPublic, PersonaUpdate
from control_api.services import audit
from control_api.services import personas as service

router = APIRouter(prefix="/api/personas", tags=["personas"])
Manager = Annotated[User, Depends(require(Permission.PERSONAS_MANAGE))]
# The longest text a voice preview speaks: a greeting, not a document.
PREVIEW_MAX_CHARS = 300


class VoicesPublic(BaseModel):
    """The voices a persona can be given: the running synthesiser's installed voices."""

    engine: str = Field(description="The voice engine in use (e.g. flite).")
    voices: list[str] = Field(description="Its installed voices.")
    default: str | None = Field(description="The configured voice for personas that name none (null: the engine's).")


class VoicePreviewRequest(BaseModel):
    """A text to hear in a voice."""

    model_config = ConfigDict(extra="forbid")

    voice: str | None = Field(default=None, max_length=100, description="One of the installed voices; none: default.")
    text: str = Field(min_length=1, max_length=PREVIEW_MAX_CHARS, description="What to say (e.g. the greeting).")


_NO_VOICE: dict[int | str, dict[str, Any]] = {
    503: {"description": "No voice engine runs in this server (a control-plane-only process)."}
}


@router.get("/preview-voice", response_model=VoicesPublic, responses=_NO_VOICE)
async def list_voices(user: Manager) -> VoicesPublic:
    """The voices a persona can be given (what the installed voice engine really has)."""
    del user
    found = service.voice_preview().voices()
    return VoicesPublic(engine=found.engine, voices=list(found.voices), default=found.default)


@router.post(
    "/preview-voice",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "The text spoken, as a 16-bit mono WAV file."},
        **_NO_VOICE,
    },
)
async def preview_voice(body: VoicePreviewRequest, state: StateDep, user: Manager) -> Response:
    """Speak ``text`` in ``voice`` with the synthesiser the calls use: a WAV file (rate-limited per user)."""
    preview = service.voice_preview()
    found = preview.voices()
    voice = body.voice or found.default
    if voice is not None and voice not in found.voices:
        raise ProblemError(
            422,
            f"The voice engine {found.engine} has no voice {body.voice!r}; it has: {', '.join(found.voices)}.",
            type_="unknown-voice",
        )
    text = " ".join(body.text.split())
    if not text:
        raise ProblemError(422, "There is nothing to say: the text is blank.", type_="validation-error")
    await hit(state.limiter, "voice_preview", f"user:{user.id}")
    pcm, rate = await preview.speak(text, voice)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return Response(out.getvalue(), media_type="audio/wav", headers={"Cache-Control": "no-store"})


@router.get("", response_model=PersonasPublic)
async def list_personas(session: SessionDep, user: CurrentUser) -> PersonasPublic:
    """The active version of every persona."""
    del user
    rows = await service.list_active(session)
    return PersonasPublic(items=[PersonaPublic.model_validate(p) for p in rows], count=len(rows))


@router.get("/{name}", response_model=PersonaPublic)
async def get_persona(name: str, session: SessionDep, user: CurrentUser) -> PersonaPublic:
    """The active version of persona ``name``."""
    del user
    return PersonaPublic.model_validate(await service.get_active(session, name))


@router.get("/{name}/versions", response_model=PersonasPublic)
async def list_persona_versions(name: str, session: SessionDep, user: Manager) -> PersonasPublic:
    """Every version of persona ``name``, newest first."""
    del user
    rows = await service.list_versions(session, name)
    return PersonasPublic(items=[PersonaPublic.model_validate(p) for p in rows], count=len(rows))


@router.post("", response_model=PersonaPublic, status_code=201)
async def create_persona(body: PersonaCreate, request: Request, session: SessionDep, user: Manager) -> PersonaPublic:
    """Create a persona (version 1, active)."""
    persona = await service.create(session, created_by=user.id, **body.model_dump())
    await audit.record(
        session,
        actor_for(request, user),
        "personas.create",
        target_type="persona",
        target_id=persona.id,
        detail={"name": persona.name, "version": persona.version},
    )
    return PersonaPublic.model_validate(persona)


@router.put("/{name}", response_model=PersonaPublic)
async def update_persona(
    name: str, body: PersonaUpdate, request: Request, session: SessionDep, user: Manager
) -> PersonaPublic:
    """Store an edit of persona ``name`` as a new version that becomes the active one."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:  # nothing to change: no new version
        return PersonaPublic.model_validate(await service.get_active(session, name))
    persona = await service.new_version(session, name, changes=changes, created_by=user.id)
    await audit.record(
        session,
        actor_for(request, user),
        "personas.update",
        target_type="persona",
        target_id=persona.id,
        detail={"name": persona.name, "version": persona.version, "fields": sorted(changes)},
    )
    return PersonaPublic.model_validate(persona)
