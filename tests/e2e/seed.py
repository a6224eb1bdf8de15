"""Run inside the server's environment (``python -m tests.e2e.seed ...``): prepare the database, mint tokens.

``seed``: migrate and give the default persona a short greeting (the tests' fake microphones start talking a
few seconds in). ``token EMAIL ROLE``: create an account and print a bearer access token for it.
"""

from __future__ import annotations

import asyncio
import sys

from config import load_settings
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.rbac import Role
from control_api.security import create_access_token
from control_api.services import personas
from control_api.services.users import create_user

SHORT_GREETING = "Hi, this is Ava."
SHORT_NOTICE = "This call is recorded."


async def seed() -> None:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    async with session_factory(engine)() as db:
        if await personas.find_active(db, personas.DEFAULT_PERSONA) is None:
            await personas.create(
                db, name=personas.DEFAULT_PERSONA, greeting=SHORT_GREETING, consent_notice=SHORT_NOTICE
            )
    await engine.dispose()


async def token(email: str, role: str) -> str:
    settings = load_settings()
    engine = create_engine(settings.database_url)
    async with session_factory(engine)() as db:
        user = await create_user(db, email=email, password="correct-horse-battery", role=Role(role))
    await engine.dispose()
    return create_access_token(
        subject=user.id, role=user.role, secret=settings.auth.secret_key.get_secret_value(), minutes=30
    )


if __name__ == "__main__":
    if sys.argv[1] == "seed":
        asyncio.run(seed())
    else:
        print(asyncio.run(token(sys.argv[2], sys.argv[3])))
