"""Retrieval-augmented generation endpoints: query the knowledge base, see the LLM's context, review gaps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from control_api.db.models import User
from control_api.deps import SessionDep, StateDep, require
from control_api.rbac import Permission
from control_api.routes.knowledge import knowledge_service
from control_api.schemas.knowledge import (
    PassagePublic,
    Question,
    RagContextResponse,
    RagQueryRequest,
    RagQueryResponse,
    UnansweredList,
    UnansweredPublic,
)
from control_api.services import knowledge as service

router = APIRouter(prefix="/api/rag", tags=["rag"])
Reader = Annotated[User, Depends(require(Permission.KNOWLEDGE_READ))]


@router.post("/query", response_model=RagQueryResponse)
async def query(body: RagQueryRequest, state: StateDep, session: SessionDep, user: Reader) -> RagQueryResponse:
    """Retrieve passages for a question, best first; ``found`` is false below the calibrated threshold.

    Every query is logged with its top score (``GET /api/rag/unanswered`` lists the ones that found nothing).
    """
    del user
    knowledge = knowledge_service(state)
    retrieval = await knowledge.kb.retrieve(body.question, top_k=body.top_k or state.settings.knowledge.top_k)
    await service.log_query(session, body.question, retrieval, redact=state.settings.retention.redact_pii)
    passages = [PassagePublic.model_validate(p) for p in service.passages_payload(retrieval)]
    return RagQueryResponse(
        found=retrieval.found,
        answer=service.spoken_answer(body.question, retrieval),
        passages=passages,
        latency_ms=round(retrieval.latency_ms, 3),
    )


@router.get("/context", response_model=RagContextResponse)
async def context(
    state: StateDep,
    session: SessionDep,
    user: Reader,
    question: Annotated[Question, Query()],
    top_k: Annotated[int | None, Query(ge=1, le=20)] = None,
) -> RagContextResponse:
    """The context block the LLM would get for ``question`` (logged like a query)."""
    del user
    knowledge = knowledge_service(state)
    retrieval = await knowledge.kb.retrieve(question, top_k=top_k or state.settings.knowledge.top_k)
    await service.log_query(session, question, retrieval, redact=state.settings.retention.redact_pii)
    return RagContextResponse(
        found=retrieval.found,
        context=service.context_block(retrieval),
        passages=[PassagePublic.model_validate(p) for p in service.passages_payload(retrieval)],
    )


@router.get("/unanswered", response_model=UnansweredList)
async def unanswered(
    session: SessionDep, user: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> UnansweredList:
    """Questions the knowledge base could not answer, grouped, most recent first."""
    del user
    rows = await service.unanswered(session, limit=limit)
    return UnansweredList(
        data=[UnansweredPublic.model_validate(r, from_attributes=True) for r in rows], count=len(rows)
    )
