"""``append_turn``: the raw text never reaches the database, caller turns carry VADER sentiment."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.db.engine import session_factory
from control_api.db.migrate import upgrade
from control_api.services import calls

pytestmark = pytest.mark.integration


async def test_turns_are_redacted_and_scored(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    async with session_factory(sqlite_engine)() as session:
        call = await calls.create_call(session, channel="webrtc")
        await calls.append_turn(
            session, call.id, seq=1, role="caller", text="This is awful, my card 4111 1111 1111 1111 was charged twice"
        )
        await calls.append_turn(session, call.id, seq=2, role="agent", text="Sorry about that, let me help.")
        await calls.append_turn(session, call.id, seq=3, role="caller", text="Thanks, that is great, really helpful!")
        await calls.append_turn(session, call.id, seq=4, role="caller", text="mail a@b.io", redact=False)
    async with sqlite_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT seq, role, text, sentiment FROM call_turns ORDER BY seq"))).all()
        dump = (await conn.execute(text("SELECT group_concat(text, ' ') FROM call_turns"))).scalar_one()
        call_row = (await conn.execute(text("SELECT sentiment, sentiment_label FROM calls"))).one()
    assert "4111" not in dump
    assert rows[0].text == "This is awful, my card [CARD] was charged twice"
    assert rows[0].sentiment < -0.05
    assert rows[1].sentiment is None  # agent turns are not scored
    assert rows[2].sentiment > 0.05
    assert rows[3].text == "mail a@b.io"  # redaction off when the operator turns it off
    mean = (rows[0].sentiment + rows[2].sentiment + rows[3].sentiment) / 3
    assert call_row.sentiment == pytest.approx(mean, abs=1e-3)
    assert call_row.sentiment_label in {"positive", "neutral", "negative"}
