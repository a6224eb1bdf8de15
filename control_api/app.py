"""The control plane's FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from config import Settings
from control_api.cache import create_cache
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.integrations.dispatcher import Dispatcher, RetryPolicy
from control_api.integrations.http import GuardedHttp
from control_api.integrations.secrets import SecretBox
from control_api.looplag import LoopLagProbe
from control_api.middleware import RequestContextMiddleware
from control_api.problems import install_problem_handlers
from control_api.ratelimit import build_limiter
from control_api.ratelimit import close as close_limiter
from control_api.routes import docs, health
from control_api.routes.registry import ROUTERS
from control_api.services import analysis_jobs, retention
from control_api.services import integrations as integrations_service
from control_api.services import knowledge as knowledge_service
from control_api.state import AppState, ReadinessCheck

log = structlog.get_logger(__name__)
# Called with the built state after migrations; used by the composition root to load models,
# register readiness checks and start background jobs. Returns an optional async cleanup.
StartupHook = Callable[[AppState], Awaitable[Callable[[], Awaitable[None]] | None]]


async def _start_knowledge(state: AppState) -> Callable[[], Awaitable[None]]:
    """Start the knowledge base; if it cannot start, the API still serves and readiness says why."""
    try:
        state.knowledge = await knowledge_service.start(settings=state.settings, sessions=state.sessions)
    except Exception as exc:  # one failing component must not take the whole API down
        log.exception("knowledge_start_failed", error_type=type(exc).__name__)
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"

        async def failed() -> None:
            raise RuntimeError(f"knowledge base failed to start ({reason})")

        state.readiness["knowledge"] = failed

        async def nothing() -> None:
            return None

        return nothing
    service = state.knowledge
    state.readiness["knowledge"] = service.ready

    async def stop() -> None:
        state.knowledge = None
        await knowledge_service.stop(service)

    return stop


def _start_dispatcher(state: AppState) -> Callable[[], Awaitable[None]]:
    """Start delivering the integrations outbox (deliveries left by an earlier process resume)."""
    section = state.settings.integrations
    dispatcher = Dispatcher(
        sessions=state.sessions,
        box=SecretBox(
            section.secret_key.get_secret_value(), [k.get_secret_value() for k in section.previous_secret_keys]
        ),
        http=GuardedHttp(
            allowed_private_hosts=section.allowed_private_hosts, timeout_secs=section.delivery_timeout_secs
        ),
        retry=RetryPolicy(
            max_attempts=section.max_attempts,
            initial_secs=section.retry_initial_secs,
            max_secs=section.retry_max_secs,
        ),
        breaker_failures=section.breaker_failures,
        breaker_reset_secs=section.breaker_reset_secs,
        poll_interval_secs=section.poll_interval_secs,
        # A claimed delivery whose process died is taken over once its request must have timed out.
        lease_secs=section.delivery_timeout_secs * 2 + 5,
        # Links to calls use the settings in force at each delivery (``state.settings`` may be replaced).
        console_url=lambda: integrations_service.console_base(state.settings),
    )
    dispatcher.start()
    return dispatcher.stop


def create_app(
    settings: Settings,
    *,
    routers: Sequence[APIRouter] = (),
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    startup_hooks: Sequence[StartupHook] = (),
    migrate_on_start: bool = True,
) -> FastAPI:
    """Build the Voxdesk API.

    Args:
        settings: The loaded settings (only composition roots build them).
        routers: Extra routers (the voice endpoints, mounted by ``agent``).
        readiness_checks: Extra named checks for ``/health/ready`` (e.g. loaded models).
        startup_hooks: Coroutines run in the lifespan after the database is ready.
        migrate_on_start: Upgrade the schema to the newest revision on start.

    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for directory in (settings.data_dir, settings.uploads_dir, settings.recordings_dir, settings.models_dir):
            directory.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url, echo=settings.database.echo, pool_size=settings.database.pool_size
        )
        if migrate_on_start:
            await upgrade(engine)
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            cache=create_cache(settings.redis.url),
            readiness=dict(readiness_checks or {}),
            limiter=build_limiter(settings.rate_limits.model_dump(), redis_url=settings.redis.url),
        )
        app.state.voxdesk = state
        probe = LoopLagProbe()
        probe.start()
        cleanups: list[Callable[[], Awaitable[None]]] = [probe.stop]
        cleanups.append(
            retention.start_purge_job(
                state.sessions,
                retention.RetentionPolicy(
                    recordings_days=settings.retention.recordings_days,
                    transcripts_days=settings.retention.transcripts_days,
                    recordings_dir=settings.recordings_dir,
                ),
                interval_seconds=settings.retention.purge_interval_minutes * 60,
            )
        )
        cleanups.append(_start_dispatcher(state))
        cleanups.append(await _start_knowledge(state))
        cleanups.append(await analysis_jobs.start_worker(state))  # issue 20: post-call analysis queue
        try:
            for hook in startup_hooks:
                cleanup = await hook(state)
                if cleanup is not None:
                    cleanups.append(cleanup)
            log.info("api_started", database=engine.dialect.name, cache=state.cache.name)
            yield
        finally:
            for cleanup in reversed(cleanups):
                await cleanup()
            await state.cache.close()
            await close_limiter(state.limiter)
            await engine.dispose()

    app = FastAPI(
        title="Voxdesk",
        summary="Self-hostable AI voice desk for customer support.",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.server.max_body_bytes,
        max_upload_bytes=settings.knowledge.max_upload_bytes,
    )
    if settings.server.trusted_proxies:
        # Outermost, so that every layer (limits, audit, logs) sees the client a trusted proxy forwarded for.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.server.trusted_proxies)
    app.include_router(health.router)
    docs.mount_docs(app)
    for router in (*ROUTERS, *routers):
        app.include_router(router)
    return app
