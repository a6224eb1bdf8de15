"""Voice profiles: per-user or per-caller voice preferences (language, voice, speaking rate)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import VoiceProfile, utcnow


async def get(session: AsyncSession, key: str) -> VoiceProfile | None:
    """The stored profile for ``key`` (a user id or a caller number), or None."""
    return await session.get(VoiceProfile, key)


async def put(
    session: AsyncSession, key: str, *, language: str, voice: str | None, speaking_rate: float
) -> VoiceProfile:
    """Create or replace the profile for ``key``. Commits."""
    profile = await session.get(VoiceProfile, key)
    if profile is None:
        profile = VoiceProfile(id=key)
        session.add(profile)
    profile.language = language
    profile.voice = voice
    profile.speaking_rate = speaking_rate
    profile.updated_at = utcnow()
    await session.commit()
    return profile
