"""A question for the knowledge base is text: a NUL is refused (422 problem), other control characters are spaces."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from control_api.db.models import RagQuery
from control_api.schemas.knowledge import RagQueryRequest
from control_api.services import calls as calls_service
from tests.control_api.conftest import Accounts

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("What are\tyour\r\nhours?", "What are your hours?"),
        ("a\x1b[31mb\x7f c", "a [31mb c"),
        ("  Fine as it is  ", "Fine as it is"),
    ],
)
def test_control_characters_become_spaces(raw: str, kept: str) -> None:
    assert RagQueryRequest(question=raw).question == kept


@pytest.mark.parametrize("raw", ["a\x00b", "\x01\x02 \n"])
def test_a_nul_or_nothing_but_control_characters_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        RagQueryRequest(question=raw)


def test_a_nul_in_a_typed_question_is_a_422_problem(accounts: Accounts) -> None:
    c, h = accounts.client, accounts.headers("supervisor")
    r = c.post("/api/rag/query", json={"question": "a\u0000b"}, headers=h)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "\x00" not in r.text and "\\u0000" not in r.text
    r = c.get("/api/rag/context", params={"question": "a\x00b"}, headers=h)
    assert r.status_code == 422, r.text


def test_unanswered_questions_say_which_were_typed_tests(accounts: Accounts) -> None:
    """The Knowledge page's list keeps typed questions, labelled: ``typed`` of ``count`` had no call."""
    c = accounts.client
    state = c.app.state.voxdesk  # type: ignore[attr-defined]

    async def seed() -> None:
        async with state.sessions() as session:
            call = await calls_service.create_call(session, channel="webrtc")
            session.add(RagQuery(question="Do you sell boats?", found=False, call_id=call.id))
            session.add(RagQuery(question="Do you sell boats?", found=False))
            session.add(RagQuery(question="Is there a purple light?", found=False))
            await session.commit()

    c.portal.call(seed)  # type: ignore[union-attr]
    listed = c.get("/api/rag/unanswered", headers=accounts.headers("supervisor")).json()["data"]
    assert {(u["question"], u["count"], u["typed"]) for u in listed} == {
        ("Do you sell boats?", 2, 1),
        ("Is there a purple light?", 1, 1),
    }
