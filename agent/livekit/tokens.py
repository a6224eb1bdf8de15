"""``POST /api/livekit/token``: a signed-in user's token for a LiveKit room that Voxdesk's agent answers.

The console (or any client of the API) asks for a room; the token lets the user join that room only, under the
identity ``user-<id>``, and carries a room configuration that makes LiveKit dispatch Voxdesk's agent
(``voxdesk worker``) into it. The role needs ``voice:call``; with LiveKit not configured the route answers 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from config.settings import LiveKitSettings
from control_api.db.models import User
from control_api.deps import require
from control_api.problems import ProblemError
from control_api.rbac import Permission

MINT_PATH = "/api/livekit/token"
Caller = Annotated[User, Depends(require(Permission.VOICE_CALL))]


class LiveKitTokenRequest(BaseModel):
    """The room to join (default: a new room of its own)."""

    model_config = ConfigDict(extra="forbid")

    room: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class LiveKitToken(BaseModel):
    """Where to connect, as whom, and the token to present."""

    url: str
    room: str
    identity: str
    token: str


def livekit_token_router(settings: LiveKitSettings) -> APIRouter:
    """The token route (tokens signed with ``settings``' API key and secret)."""
    router = APIRouter(tags=["telephony"])

    @router.post(MINT_PATH, responses={404: {"description": "LiveKit is not configured."}})
    async def livekit_token(body: LiveKitTokenRequest, user: Caller) -> LiveKitToken:
        """Mint a token for the signed-in user to join a LiveKit room with Voxdesk's agent dispatched into it."""
        if settings.url is None or settings.api_secret is None:
            raise ProblemError(404, "LiveKit is not configured on this server.", type_="livekit-off")
        # livekit-api is the `voxdesk[livekit]` extra: imported only where LiveKit is configured.
        from agent.livekit.admin import USER_IDENTITY_PREFIX, participant_token

        room = body.room or f"web-{uuid.uuid4().hex[:16]}"
        identity = f"{USER_IDENTITY_PREFIX}{user.id}"
        token = participant_token(settings, identity=identity, room=room, name=user.full_name, dispatch=True)
        return LiveKitToken(url=settings.url, room=room, identity=identity, token=token)

    return router
