"""The ``voxdesk`` command line."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from config import Settings, SettingsError, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Voxdesk: a self-hostable AI voice desk.")

EXIT_BAD_SETTINGS = 2


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as err:
        typer.echo(f"voxdesk: {err}", err=True)
        raise typer.Exit(EXIT_BAD_SETTINGS) from None


def uvicorn_config(application: Any, *, host: str, port: int) -> Any:
    """The uvicorn configuration ``serve`` runs with (a ``uvicorn.Config``)."""
    import uvicorn

    return uvicorn.Config(
        application,
        host=host,
        port=port,
        log_config=None,
        # The app writes the access lines itself (control_api.middleware): without query strings, so a
        # WebSocket's access_token never reaches a log.
        access_log=False,
        # Forwarded headers are resolved by the app, only from settings.server.trusted_proxies.
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        # No permessage-deflate: a call's socket carries 20 ms PCM frames both ways, which deflate barely
        # shrinks, at a zlib pass per frame on the audio loop (docs/measurements.md, "WebSocket compression").
        ws_per_message_deflate=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port (default from settings).")] = None,
) -> None:
    """Run the API, the console, the voice endpoints and the call pipelines in one process."""
    import uvicorn

    from control_api.logging_setup import configure_logging

    settings = _settings()
    # Before pipecat is imported: it logs at import time, and those lines belong in the one stream too.
    configure_logging(level=settings.logging.level, json_logs=settings.logging.json_logs)
    from agent.server import build_app

    application = build_app(settings)
    config = uvicorn_config(application, host=host or settings.server.host, port=port or settings.server.port)
    uvicorn.Server(config).run()


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from control_api.db.engine import create_engine
    from control_api.db.migrate import current_revision, upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(run())
    typer.echo(f"database at revision {revision}")


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        typer.echo("voxdesk: the passwords differ", err=True)
        raise typer.Exit(1)
    return first


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="E-mail of the admin account.")],
    full_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create an admin account; the password is read from a prompt or stdin, never from argv."""
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import upgrade
    from control_api.problems import ProblemError
    from control_api.rbac import Role
    from control_api.services import audit
    from control_api.services.users import create_user

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    password = _read_password()

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            async with session_factory(engine)() as session:
                user = await create_user(session, email=email, password=password, role=Role.ADMIN, full_name=full_name)
                # The same entry as the API's user creation (routes/users.py), by the CLI.
                await audit.record(
                    session,
                    audit.Actor.system("cli"),
                    "users.create",
                    target_type="user",
                    target_id=user.id,
                    detail={"role": user.role, "invited": False},
                )
                return user.id
        finally:
            await engine.dispose()

    try:
        user_id = asyncio.run(run())
    except ProblemError as err:
        typer.echo(f"voxdesk: {err.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"admin created: {user_id}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to add to the knowledge base.")],
) -> None:
    """Add documents to the knowledge base and process them now."""
    from agent.cli.ingest import run_ingest

    settings = _settings()
    code = asyncio.run(run_ingest(settings, paths))
    raise typer.Exit(code)


@app.command("asr-adapt")
def asr_adapt(
    recordings: Annotated[
        Path, typer.Argument(help="Directory of audio files, each with a .txt transcript beside it.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Adapted model directory (default: <models_dir>/acoustic-adapted).")
    ] = None,
    base: Annotated[Path | None, typer.Option(help="Model to adapt (default: the configured one).")] = None,
    tau: Annotated[float, typer.Option(help="Prior weight in frames: higher moves the model less.")] = 10.0,
) -> None:
    """Adapt the speech recogniser's acoustic model to transcribed recordings of your line."""
    from agent.cli.asr_adapt import run_adapt

    settings = _settings()
    code = run_adapt(
        settings, recordings, out=out, base=base, tau=tau, echo=typer.echo, fail=lambda s: typer.echo(s, err=True)
    )
    raise typer.Exit(code)


@app.command()
def doctor() -> None:
    """Print what is configured, what is reachable, which models load and which optional backends are missing."""
    from agent.cli.doctor import run_doctor

    settings = _settings()
    ok = asyncio.run(run_doctor(settings, typer.echo))
    raise typer.Exit(0 if ok else 1)


@app.command()
def backup(
    out: Annotated[Path, typer.Option(help="New (or empty) directory the backup is written to.")],
) -> None:
    """Back up the database, the uploaded originals and the recordings, with a manifest of sha256 sums."""
    from agent.cli.backup import run_backup

    code = run_backup(_settings(), out, echo=typer.echo, fail=lambda s: typer.echo(s, err=True))
    raise typer.Exit(code)


@app.command()
def restore(
    source: Annotated[Path, typer.Option("--from", help="Directory written by `voxdesk backup`.")],
    force: Annotated[bool, typer.Option(help="Replace a database and files that are already there.")] = False,
) -> None:
    """Restore a backup (verified against its manifest first), upgrade the schema and rebuild the index."""
    from agent.cli.backup import run_restore

    code = run_restore(_settings(), source, force=force, echo=typer.echo, fail=lambda s: typer.echo(s, err=True))
    raise typer.Exit(code)


@app.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown table generated from ``Settings``)."""
    from config.reference import render_markdown

    typer.echo(render_markdown())


# LiveKit scale-out (issue 17): `voxdesk worker`, `voxdesk livekit token|setup-sip`.
from agent.cli.livekit import livekit_app, worker  # noqa: E402 - registered after this module's own commands

app.command("worker")(worker)
app.add_typer(livekit_app, name="livekit")


def main() -> None:
    """Entry point of the ``voxdesk`` console script."""
    app()
