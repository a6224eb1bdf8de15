"""``GET/PUT /api/voice/profile/{user_id}``: voice preferences of a user (yourself) or a caller."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import User, VoiceProfile
from control_api.deps import CurrentUser, SessionDep, actor_for
from control_api.rbac import Permission, ensure
from control_api.schemas.voice_profiles import VoiceProfilePublic, VoiceProfileUpdate
from control_api.services import audit, users
from control_api.services import voice_profiles as service

router = APIRouter(prefix="/api/voice/profile", tags=["voice"])
ProfileKey = Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9+@._:-]+$")


async def _authorise(session: AsyncSession, user: User, key: str) -> None:
    # Your own profile is yours; anyone else's (another user, a caller number) needs calls:write.
    if key == user.id:
        return
    ensure(user.role, Permission.CALLS_WRITE)
    # A key shaped as a user id names an account, which must exist (404 otherwise); any other key is a caller
    # (a number or SIP address), and any caller may ring, so every caller has a profile (the defaults at first).
    try:
        uuid.UUID(key)
    except ValueError:
        return
    await users.get_user(session, key)


def _public(key: str, profile: VoiceProfile | None) -> VoiceProfilePublic:
    if profile is None:
        return VoiceProfilePublic(user_id=key, language="en", voice=None, speaking_rate=1.0, updated_at=None)
    return VoiceProfilePublic(
        user_id=profile.id,
        language=profile.language,
        voice=profile.voice,
        speaking_rate=profile.speaking_rate,
        updated_at=profile.updated_at,
    )


@router.get("/{user_id}", response_model=VoiceProfilePublic)
async def get_profile(session: SessionDep, user: CurrentUser, user_id: str = ProfileKey) -> VoiceProfilePublic:
    """The voice preferences for ``user_id`` (defaults when none are stored); 404: no account with this id."""
    await _authorise(session, user, user_id)
    return _public(user_id, await service.get(session, user_id))


@router.put("/{user_id}", response_model=VoiceProfilePublic)
async def put_profile(
    body: VoiceProfileUpdate, request: Request, session: SessionDep, user: CurrentUser, user_id: str = ProfileKey
) -> VoiceProfilePublic:
    """Create or replace the voice preferences for ``user_id``; 404: no account with this id."""
    await _authorise(session, user, user_id)
    profile = await service.put(session, user_id, **body.model_dump())
    await audit.record(
        session,
        actor_for(request, user),
        "voice_profiles.update",
        target_type="voice_profile",
        target_id=user_id,
    )
    return _public(user_id, profile)
