"""Knowledge documents: upload, import from a URL, (re)process, status, list and delete."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile

from control_api.db.models import User
from control_api.deps import SessionDep, StateDep, actor_for, require
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.schemas.knowledge import (
    DocumentPublic,
    DocumentsPublic,
    DocumentStatus,
    DocumentStatusPublic,
    ImportUrlRequest,
    KnowledgeCalibrationPublic,
    ProcessRequest,
    ProcessResult,
    RejectedFile,
    UploadedDocument,
    UploadResult,
)
from control_api.services import audit, ingestion
from control_api.services import knowledge as service
from control_api.state import AppState
from knowledge.errors import FetchError
from knowledge.fetch import fetch, sitemap_urls
from knowledge.sniff import sniff

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])
Reader = Annotated[User, Depends(require(Permission.KNOWLEDGE_READ))]
Writer = Annotated[User, Depends(require(Permission.KNOWLEDGE_WRITE))]
READ_CHUNK = 1024 * 1024


def knowledge_service(state: AppState) -> service.KnowledgeService:
    """The running knowledge service; 503 problem JSON while it is not available."""
    knowledge = state.knowledge
    if knowledge is None:
        raise ProblemError(503, "The knowledge base is not running.", type_="knowledge-unavailable")
    return knowledge


async def _read_limited(upload: UploadFile, limit: int) -> bytes | None:
    data = bytearray()
    while piece := await upload.read(READ_CHUNK):
        data.extend(piece)
        if len(data) > limit:
            return None
    return bytes(data)


@router.post("/upload", response_model=UploadResult, status_code=202)
async def upload(
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: Writer,
    files: Annotated[list[UploadFile], File(description="One or more documents (field name `files`).")],
) -> UploadResult:
    """Store each file's original and queue it for ingestion; the type is sniffed from the content.

    Files that are empty, too large, binary, encrypted Office files or zip bombs are refused with a reason.
    Identical content uploaded before returns the existing document (``duplicate: true``).
    """
    knowledge = knowledge_service(state)
    limit = state.settings.knowledge.max_upload_bytes
    accepted: list[UploadedDocument] = []
    rejected: list[RejectedFile] = []
    for item in files:
        name = item.filename or "document"
        data = await _read_limited(item, limit)
        if data is None:
            rejected.append(RejectedFile(filename=name, status=413, reason=f"Larger than the {limit} bytes allowed."))
            continue
        try:
            outcome = await ingestion.add_document(
                session,
                uploads_dir=state.settings.uploads_dir,
                data=data,
                filename=name,
                max_bytes=limit,
                created_by=user.id,
            )
        except ProblemError as exc:
            rejected.append(RejectedFile(filename=name, status=exc.status, reason=exc.detail))
            continue
        accepted.append(
            UploadedDocument.model_validate({**_doc_dict(outcome.document), "duplicate": outcome.duplicate})
        )
    await audit.record(
        session,
        actor_for(request, user),
        "knowledge.upload",
        target_type="knowledge_document",
        target_id=accepted[0].id if len(accepted) == 1 else None,
        outcome="success" if accepted else "failure",
        detail={
            "accepted": [{"id": d.id, "filename": d.filename, "duplicate": d.duplicate} for d in accepted],
            "rejected": [{"filename": r.filename, "status": r.status} for r in rejected],
        },
    )
    if not accepted and rejected:
        first = rejected[0]
        raise ProblemError(
            first.status if len(rejected) == 1 else 422,
            first.reason if len(rejected) == 1 else "None of the files could be accepted.",
            type_="upload-refused",
            extra={"rejected": [r.model_dump() for r in rejected]},
        )
    if knowledge.worker is not None and any(not d.duplicate for d in accepted):
        knowledge.worker.notify()
    return UploadResult(documents=accepted, rejected=rejected)


def _doc_dict(document: object) -> dict[str, object]:
    return DocumentPublic.model_validate(document).model_dump()


@router.post("/import-url", response_model=UploadResult, status_code=202)
async def import_url(
    body: ImportUrlRequest, request: Request, state: StateDep, session: SessionDep, user: Writer
) -> UploadResult:
    """Fetch a web page (or every page of a sitemap, up to 50) and queue it for ingestion.

    Private, loopback and reserved addresses are refused (SSRF) unless ``knowledge.allow_private_urls``.
    """
    knowledge = knowledge_service(state)
    settings = state.settings.knowledge
    limit = settings.max_upload_bytes
    actor = actor_for(request, user)
    try:
        page = await fetch(body.url, allow_private=settings.allow_private_urls, max_bytes=limit)
    except FetchError as exc:
        await audit.record(
            session,
            actor,
            "knowledge.import_url",
            outcome="failure",
            detail={"url": body.url[:300], "reason": exc.message},
        )
        raise ProblemError(422 if not exc.retryable else 502, exc.message, type_="import-refused") from None
    pages = [page]
    rejected: list[RejectedFile] = []
    try:
        is_sitemap = sniff(page.data) == "sitemap"
    except Exception:  # noqa: BLE001 - add_document reports the precise reason below
        is_sitemap = False
    if is_sitemap:
        pages = []
        for url in sitemap_urls(page.data):
            try:
                pages.append(await fetch(url, allow_private=settings.allow_private_urls, max_bytes=limit))
            except FetchError as exc:
                rejected.append(RejectedFile(filename=url[:255], status=422, reason=exc.message))
    accepted: list[UploadedDocument] = []
    for item in pages:
        name = _name_for(item.url)
        try:
            outcome = await ingestion.add_document(
                session,
                uploads_dir=state.settings.uploads_dir,
                data=item.data,
                filename=name,
                max_bytes=limit,
                created_by=user.id,
                source_url=item.url[:2048],
            )
        except ProblemError as exc:
            rejected.append(RejectedFile(filename=name, status=exc.status, reason=exc.detail))
            continue
        accepted.append(
            UploadedDocument.model_validate({**_doc_dict(outcome.document), "duplicate": outcome.duplicate})
        )
    await audit.record(
        session,
        actor,
        "knowledge.import_url",
        target_type="knowledge_document",
        outcome="success" if accepted else "failure",
        detail={"url": body.url[:300], "accepted": [d.id for d in accepted], "rejected": len(rejected)},
    )
    if not accepted and rejected:
        raise ProblemError(
            422, rejected[0].reason, type_="import-refused", extra={"rejected": [r.model_dump() for r in rejected]}
        )
    if knowledge.worker is not None:
        knowledge.worker.notify()
    return UploadResult(documents=accepted, rejected=rejected)


def _name_for(url: str) -> str:
    parts = urlsplit(url)
    tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return (tail or parts.hostname or "page")[:200]


@router.post("/process", response_model=ProcessResult, status_code=202)
async def process(
    body: ProcessRequest, request: Request, state: StateDep, session: SessionDep, user: Writer
) -> ProcessResult:
    """Queue documents for (re)processing: the ids given, or every failed document."""
    knowledge = knowledge_service(state)
    if body.document_ids:
        documents = [await service.get_document(session, doc_id) for doc_id in dict.fromkeys(body.document_ids)]
    else:
        documents, _ = await service.list_documents(session, status="failed", limit=10000)
    for document in documents:
        await ingestion.requeue(session, document)
    await audit.record(
        session,
        actor_for(request, user),
        "knowledge.process",
        target_type="knowledge_document",
        detail={"document_ids": [d.id for d in documents][:200]},
        commit=False,
    )
    await session.commit()
    if knowledge.worker is not None and documents:
        knowledge.worker.notify()
    return ProcessResult(queued=[d.id for d in documents])


@router.get("/status/{document_id}", response_model=DocumentStatusPublic)
async def status(document_id: str, session: SessionDep, user: Reader) -> DocumentStatusPublic:
    """Where the ingestion of one document stands."""
    del user
    document = await service.get_document(session, document_id)
    job = await service.latest_job(session, document_id)
    return DocumentStatusPublic(
        id=document.id,
        status=document.status,
        error=document.error,
        chunk_count=document.chunk_count,
        pages=document.pages,
        attempts=job.attempts if job else 0,
        updated_at=document.updated_at,
        processed_at=document.processed_at,
    )


@router.get("/documents", response_model=DocumentsPublic)
async def list_documents(
    session: SessionDep,
    user: Reader,
    status: Annotated[DocumentStatus | None, Query(description="Only documents with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DocumentsPublic:
    """Documents, newest first."""
    del user
    rows, total = await service.list_documents(session, status=status, limit=limit, offset=offset)
    return DocumentsPublic(data=[DocumentPublic.model_validate(r) for r in rows], count=total)


@router.delete("/documents/{document_id}", status_code=204, response_class=Response)
async def delete_document(
    document_id: str, request: Request, state: StateDep, session: SessionDep, user: Writer
) -> Response:
    """Delete a document, its chunks and its stored original."""
    knowledge = knowledge_service(state)
    document = await service.get_document(session, document_id)
    detail = {"filename": document.filename, "sha256": document.sha256}
    await service.delete_document(session, knowledge.kb, document)
    await audit.record(
        session,
        actor_for(request, user),
        "knowledge.delete",
        target_type="knowledge_document",
        target_id=document_id,
        detail=detail,
    )
    return Response(status_code=204)


@router.get("/calibration", response_model=KnowledgeCalibrationPublic)
async def calibration(state: StateDep, user: Reader) -> KnowledgeCalibrationPublic:
    """The "not found" threshold in force and how the base derived it (calls and typed queries share it)."""
    del user
    return KnowledgeCalibrationPublic.model_validate(await service.calibration_payload(knowledge_service(state)))
