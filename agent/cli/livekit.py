"""``voxdesk worker`` and ``voxdesk livekit ...``: LiveKit scale-out from the command line (issue 17).

livekit-agents and livekit-api are the ``voxdesk[livekit]`` extra: they are imported inside the commands.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

livekit_app = typer.Typer(no_args_is_help=True, help="LiveKit: participant tokens and SIP dispatch set-up.")
EXIT_NOT_CONFIGURED = 2
EXIT_UNREACHABLE = 3


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"voxdesk: {message}", err=True)
    return typer.Exit(code)


def worker(
    max_retry: Annotated[int, typer.Option(help="Connection attempts to the LiveKit server before giving up.")] = 16,
) -> None:
    """Register with the LiveKit server and run dispatched calls (WebRTC rooms, LiveKit SIP callers)."""
    from agent.cli import _settings
    from agent.livekit.admin import LiveKitNotConfigured
    from agent.livekit.worker import run_worker
    from control_api.logging_setup import configure_logging

    settings = _settings()
    configure_logging(level=settings.logging.level, json_logs=settings.logging.json_logs)
    try:
        asyncio.run(run_worker(settings, max_retry=max_retry))
    except LiveKitNotConfigured as err:
        raise _fail(str(err), EXIT_NOT_CONFIGURED) from None
    except RuntimeError as err:
        # livekit-agents' "failed to connect to livekit after N attempts".
        raise _fail(str(err), EXIT_UNREACHABLE) from None


@livekit_app.command("token")
def token(
    room: Annotated[str, typer.Option(help="Room the participant may join (and only that room).")],
    identity: Annotated[str, typer.Option(help="The participant's identity in the room.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    dispatch: Annotated[bool, typer.Option(help="Have LiveKit dispatch Voxdesk's agent into the room.")] = True,
) -> None:
    """Print a participant token (JWT) for a caller's browser or the console."""
    from agent.cli import _settings
    from agent.livekit.admin import LiveKitNotConfigured, participant_token

    settings = _settings()
    try:
        typer.echo(participant_token(settings.livekit, identity=identity, room=room, name=name, dispatch=dispatch))
    except LiveKitNotConfigured as err:
        raise _fail(str(err), EXIT_NOT_CONFIGURED) from None


@livekit_app.command("setup-sip")
def setup_sip(
    rule: Annotated[
        Path | None, typer.Option(help="Dispatch rule in LiveKit's JSON (deploy/livekit/sip-dispatch-rule.json).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the requests instead of sending them.")] = False,
) -> None:
    """Create the LiveKit SIP inbound trunk and the dispatch rule that sends each caller to Voxdesk's agent."""
    from agent.cli import _settings
    from agent.livekit import admin

    settings = _settings().livekit
    try:
        if dry_run:
            typer.echo(admin.describe(admin.inbound_trunk_request(settings)))
            request = admin.load_dispatch_rule(rule) if rule else admin.dispatch_rule_request(settings, trunk_id="")
            typer.echo(admin.describe(request))
            return

        async def run() -> admin.SipSetup:
            client = admin.livekit_api(settings)
            try:
                return await admin.setup_sip(client, settings, rule_file=rule)
            finally:
                await client.aclose()

        done = asyncio.run(run())
    except admin.LiveKitNotConfigured as err:
        raise _fail(str(err), EXIT_NOT_CONFIGURED) from None
    except Exception as err:  # noqa: BLE001 - livekit-api's ServerError, aiohttp's connection errors: one message
        raise _fail(f"LiveKit refused or could not be reached: {err}", EXIT_UNREACHABLE) from None
    typer.echo(f"inbound trunk {done.trunk_id}, dispatch rule {done.rule_id}")
