"""LiveKit administration through livekit-api: participant tokens and the SIP inbound trunk + dispatch rule.

Everything here is LiveKit's own SDK (``AccessToken``, ``LiveKitAPI.sip``); this module only turns Voxdesk's
settings into its requests, so that the CLI, the worker and the tests build them one way.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format
from livekit import api

from config.settings import LiveKitSettings

# A signed-in user's identity in a LiveKit room (POST /api/livekit/token): "user-" + the user's id.
USER_IDENTITY_PREFIX = "user-"


class LiveKitNotConfigured(RuntimeError):
    """LiveKit's URL or API secret is not set (``VOXDESK_LIVEKIT__URL`` / ``VOXDESK_LIVEKIT__API_SECRET``)."""


def credentials(settings: LiveKitSettings) -> tuple[str, str]:
    """The API key and secret, or :class:`LiveKitNotConfigured`."""
    if settings.api_secret is None:
        raise LiveKitNotConfigured("set VOXDESK_LIVEKIT__API_SECRET (and VOXDESK_LIVEKIT__API_KEY)")
    return settings.api_key, settings.api_secret.get_secret_value()


def server_url(settings: LiveKitSettings) -> str:
    """The LiveKit server URL, or :class:`LiveKitNotConfigured`."""
    if not settings.url:
        raise LiveKitNotConfigured("set VOXDESK_LIVEKIT__URL (e.g. ws://livekit:7880)")
    return settings.url


def participant_token(
    settings: LiveKitSettings,
    *,
    identity: str,
    room: str,
    name: str | None = None,
    agent: bool = False,
    dispatch: bool = False,
) -> str:
    """A JWT that lets ``identity`` join ``room`` only (publish + subscribe audio and data), for ``token_ttl_s``.

    ``agent=True`` marks the participant as an agent (LiveKit's ``kind: agent`` and the ``agent`` grant): the
    worker's own identity in the room it was dispatched to. ``dispatch=True`` (a caller's token) carries a room
    configuration naming Voxdesk's agent, so LiveKit dispatches a worker when the caller's join creates the room.
    """
    key, secret = credentials(settings)
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        agent=agent,
    )
    token = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=settings.token_ttl_s))
    )
    if name:
        token = token.with_name(name)
    if agent:
        token = token.with_kind("agent")
    if dispatch:
        agents = [api.RoomAgentDispatch(agent_name=settings.agent_name)]
        token = token.with_room_config(api.RoomConfiguration(agents=agents))
    return token.to_jwt()


def livekit_api(settings: LiveKitSettings) -> api.LiveKitAPI:
    """A LiveKit server API client (HTTP: the ws:// URL's http:// twin); close it with ``aclose()``."""
    key, secret = credentials(settings)
    url = server_url(settings).replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    # Failover probes LiveKit Cloud's region list; a self-hosted server has none.
    return api.LiveKitAPI(url, key, secret, failover=False)


def inbound_trunk_request(settings: LiveKitSettings) -> api.CreateSIPInboundTrunkRequest:
    """The inbound trunk: which numbers LiveKit SIP answers, from which carrier addresses."""
    if not settings.sip_numbers:
        raise LiveKitNotConfigured("set VOXDESK_LIVEKIT__SIP_NUMBERS (the numbers the trunk answers)")
    trunk = api.SIPInboundTrunkInfo(
        name="voxdesk-inbound",
        numbers=list(settings.sip_numbers),
        allowed_addresses=list(settings.sip_allowed_addresses),
    )
    return api.CreateSIPInboundTrunkRequest(trunk=trunk)


def dispatch_rule_request(settings: LiveKitSettings, *, trunk_id: str) -> api.CreateSIPDispatchRuleRequest:
    """One room per caller (``sip_room_prefix`` + random), with Voxdesk's agent dispatched into it."""
    rule = api.SIPDispatchRuleInfo(
        name="voxdesk-individual",
        trunk_ids=[trunk_id],
        rule=api.SIPDispatchRule(
            dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=settings.sip_room_prefix)
        ),
        room_config=api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=settings.agent_name)]),
    )
    return api.CreateSIPDispatchRuleRequest(dispatch_rule=rule)


def load_dispatch_rule(path: Path) -> api.CreateSIPDispatchRuleRequest:
    """A dispatch rule written in LiveKit's JSON (the body ``lk sip dispatch create`` takes); unknown keys refused."""
    return json_format.Parse(path.read_text(), api.CreateSIPDispatchRuleRequest())


@dataclass(frozen=True, slots=True)
class SipSetup:
    """What ``setup-sip`` created on the LiveKit server."""

    trunk_id: str
    rule_id: str


async def setup_sip(client: api.LiveKitAPI, settings: LiveKitSettings, *, rule_file: Path | None = None) -> SipSetup:
    """Create the inbound trunk, then the dispatch rule bound to it (from ``rule_file`` when given)."""
    trunk = await client.sip.create_inbound_trunk(inbound_trunk_request(settings))
    if rule_file is None:
        request = dispatch_rule_request(settings, trunk_id=trunk.sip_trunk_id)
    else:
        request = load_dispatch_rule(rule_file)
        request.dispatch_rule.trunk_ids[:] = [trunk.sip_trunk_id]
    rule = await client.sip.create_dispatch_rule(request)
    return SipSetup(trunk_id=trunk.sip_trunk_id, rule_id=rule.sip_dispatch_rule_id)


def describe(message: object) -> str:
    """A protobuf message as LiveKit's JSON (for ``--dry-run``)."""
    return json.dumps(json_format.MessageToDict(message), indent=2)  # type: ignore[arg-type]
