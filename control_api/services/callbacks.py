"""The callback work queue: callers to call back because nobody took their handoff.

A request is written by :func:`control_api.services.handoffs.record_callback` (``open``). People who take
handoffs work the queue: one claims a request (the first claim wins, a conditional update), calls the caller
back and completes it with an outcome and a note (``done``). An agent sees the open requests nobody has claimed
and the ones they claimed or completed; supervisors (``handoffs:manage``) see every request, complete any and
hand one to another person (or back to the queue). Each function commits; the routes audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import AgentPresence, CallbackRequest, User, utcnow
from control_api.problems import ProblemError
from control_api.rbac import Permission, has_permission

# Filter values of the queue: ``open`` is every request not done yet (claimed or not), ``claimed`` the open ones
# someone claimed, ``done`` the completed ones.
STATUSES = ("open", "claimed", "done")


def _seconds(start: datetime, end: datetime) -> float:
    """``end - start`` in seconds, at least 0 (SQLite hands back naive UTC times)."""
    if start.tzinfo is None or end.tzinfo is None:
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return round(max(0.0, (end - start).total_seconds()), 3)


@dataclass(frozen=True, slots=True)
class CallbackView:
    """A callback request with the names of the people who claimed and completed it."""

    request: CallbackRequest
    claimed_by_name: str | None
    completed_by_name: str | None

    def age_s(self, *, now: datetime | None = None) -> float:
        """Seconds since the request was made (until it was completed, for a done one)."""
        return _seconds(self.request.created_at, self.request.completed_at or now or utcnow())

    def public(self) -> dict[str, Any]:
        """The fields of ``CallbackPublic``."""
        request = self.request
        briefing = request.briefing or {}
        summary, why = briefing.get("summary"), briefing.get("reason")
        return {
            "id": request.id,
            "call_id": request.call_id,
            "handoff_id": request.handoff_id,
            "phone": request.phone,
            "reason": request.reason,
            "status": request.status,
            "ticket_delivery_id": request.ticket_delivery_id,
            "created_at": request.created_at,
            "summary": summary if isinstance(summary, str) else None,
            "handoff_reason": why if isinstance(why, str) else None,
            "claimed_by": request.claimed_by,
            "claimed_by_name": self.claimed_by_name,
            "claimed_at": request.claimed_at,
            "completed_by": request.completed_by,
            "completed_by_name": self.completed_by_name,
            "completed_at": request.completed_at,
            "outcome": request.outcome,
            "note": request.note,
            "age_s": self.age_s(),
        }


def _manager(user: User) -> bool:
    return has_permission(user.role, Permission.HANDOFFS_MANAGE)


def may_hold(person: User | None) -> bool:
    """The one rule for who may be handed a callback: an active account whose role takes handoffs."""
    return person is not None and person.is_active and has_permission(person.role, Permission.HANDOFFS_TAKE)


async def assignees(session: AsyncSession) -> list[tuple[User, str | None]]:
    """Everyone a supervisor may hand a callback to (:func:`may_hold`), by name, with their presence when set."""
    rows = await session.execute(
        select(User, AgentPresence.status)
        .outerjoin(AgentPresence, AgentPresence.user_id == User.id)
        .where(User.is_active.is_(True))
        .order_by(func.coalesce(User.full_name, User.email), User.email)
    )
    return [(person, presence) for person, presence in rows.all() if may_hold(person)]


async def _names(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, str]:
    """Display names (full name, else e-mail) of the accounts ``ids``."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.execute(select(User.id, User.full_name, User.email).where(User.id.in_(wanted)))
    return {uid: full_name or email for uid, full_name, email in rows.all()}


async def _view(session: AsyncSession, request: CallbackRequest) -> CallbackView:
    names = await _names(session, (request.claimed_by, request.completed_by))
    return CallbackView(
        request=request,
        claimed_by_name=names.get(request.claimed_by or ""),
        completed_by_name=names.get(request.completed_by or ""),
    )


def _filters(user: User, status: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status == "done":
        where.append(CallbackRequest.status == "done")
    elif status == "open":
        where.append(CallbackRequest.status == "open")
    elif status == "claimed":
        where += [CallbackRequest.status == "open", CallbackRequest.claimed_by.is_not(None)]
    if not _manager(user):
        where.append(
            or_(
                and_(CallbackRequest.status == "open", CallbackRequest.claimed_by.is_(None)),
                and_(CallbackRequest.status == "open", CallbackRequest.claimed_by == user.id),
                and_(CallbackRequest.status == "done", CallbackRequest.completed_by == user.id),
            )
        )
    return where


async def list_for(
    session: AsyncSession, user: User, *, status: str | None = "open", limit: int = 100
) -> tuple[list[CallbackView], int]:
    """The queue as ``user`` may see it and how many requests match in all.

    Open ones oldest first (the longest wait comes first); done ones most recently completed first.
    """
    where = _filters(user, status)
    order = (
        (CallbackRequest.completed_at.desc(), CallbackRequest.id)
        if status == "done"
        else (CallbackRequest.created_at, CallbackRequest.id)
    )
    rows: Sequence[CallbackRequest] = (
        (await session.execute(select(CallbackRequest).where(*where).order_by(*order).limit(limit))).scalars().all()
    )
    total = await session.scalar(select(func.count()).select_from(CallbackRequest).where(*where))
    names = await _names(session, [i for r in rows for i in (r.claimed_by, r.completed_by)])
    views = [
        CallbackView(
            request=r,
            claimed_by_name=names.get(r.claimed_by or ""),
            completed_by_name=names.get(r.completed_by or ""),
        )
        for r in rows
    ]
    return views, int(total or 0)


async def waiting(session: AsyncSession, *, now: datetime | None = None) -> tuple[int, float | None]:
    """How many requests are not done yet (whatever day they were made), and the oldest one's wait in seconds."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(CallbackRequest.created_at)).where(CallbackRequest.status == "open")
        )
    ).one()
    return int(count), None if oldest is None else _seconds(oldest, now or utcnow())


async def get(session: AsyncSession, callback_id: str) -> CallbackRequest:
    """The callback request; 404 problem when absent."""
    request = await session.get(CallbackRequest, callback_id)
    if request is None:
        raise ProblemError(404, "No callback request with this id.", type_="not-found")
    return request


def _done() -> ProblemError:
    return ProblemError(409, "This callback is already done.", type_="callback-done")


async def _claimed_by_other(session: AsyncSession, request: CallbackRequest) -> ProblemError:
    name = (await _names(session, [request.claimed_by])).get(request.claimed_by or "") or "another person"
    return ProblemError(
        409,
        f"Already claimed by {name}.",
        type_="callback-claimed",
        extra={"claimed_by": request.claimed_by, "claimed_by_name": name},
    )


async def _reload(session: AsyncSession, callback_id: str) -> CallbackRequest:
    """The request as another transaction left it (a conditional update that matched nothing wrote nothing)."""
    request = await get(session, callback_id)
    await session.refresh(request)
    return request


async def claim(session: AsyncSession, callback_id: str, user: User) -> CallbackView:
    """``user`` takes the request to call the caller back. Commits.

    The first claim wins: 409 when someone else holds it (the problem names them) or it is done. Claiming one's
    own claim again changes nothing.
    """
    uid = user.id
    request = await get(session, callback_id)
    won = await session.execute(
        update(CallbackRequest)
        .where(
            CallbackRequest.id == callback_id,
            CallbackRequest.status == "open",
            CallbackRequest.claimed_by.is_(None),
        )
        .values(claimed_by=uid, claimed_at=utcnow())
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        request = await _reload(session, callback_id)
        if request.status == "done":
            raise _done()
        if request.claimed_by != uid:
            raise await _claimed_by_other(session, request)
        return await _view(session, request)
    await session.commit()
    await session.refresh(request)
    return await _view(session, request)


async def complete(
    session: AsyncSession, callback_id: str, user: User, *, outcome: str, note: str | None
) -> CallbackView:
    """Close the request with how the call back went. Commits.

    An agent completes only a request they claimed (409 when nobody claimed it, 403 when someone else did); a
    supervisor completes any, and becomes its claimer when nobody had claimed it. 409 when already done.
    """
    uid, manager = user.id, _manager(user)
    request = await get(session, callback_id)
    if request.status == "done":
        raise _done()
    if not manager and request.claimed_by is None:
        raise ProblemError(409, "Claim this callback before completing it.", type_="callback-not-claimed")
    if not manager and request.claimed_by != uid:
        name = (await _names(session, [request.claimed_by])).get(request.claimed_by or "") or "another person"
        raise ProblemError(
            403, f"Claimed by {name}: only they or a supervisor complete it.", type_="callback-not-yours"
        )
    now = utcnow()
    condition = [CallbackRequest.id == callback_id, CallbackRequest.status == "open"]
    if not manager:
        condition.append(CallbackRequest.claimed_by == uid)
    done = await session.execute(
        update(CallbackRequest)
        .where(*condition)
        .values(
            status="done",
            completed_by=uid,
            completed_at=now,
            outcome=outcome,
            note=note or None,
            claimed_by=func.coalesce(CallbackRequest.claimed_by, uid),
            claimed_at=func.coalesce(CallbackRequest.claimed_at, now),
        )
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        request = await _reload(session, callback_id)
        if request.status == "done":
            raise _done()
        raise await _claimed_by_other(session, request)
    await session.commit()
    await session.refresh(request)
    return await _view(session, request)


async def release(session: AsyncSession, callback_id: str, user: User) -> CallbackView:
    """Put a claimed request back in the open queue: its claimer, or a supervisor. Commits."""
    request = await get(session, callback_id)
    if request.status == "done":
        raise _done()
    if request.claimed_by is None:
        raise ProblemError(409, "Nobody has claimed this callback.", type_="callback-not-claimed")
    if request.claimed_by != user.id and not _manager(user):
        raise await _claimed_by_other(session, request)
    return await _assign(session, request, None)


async def reassign(session: AsyncSession, callback_id: str, user_id: str | None) -> CallbackView:
    """A supervisor hands the request to ``user_id``, or back to the open queue with ``None``. Commits.

    409 when done; 422 when that account does not exist, is inactive or does not take handoffs.
    """
    request = await get(session, callback_id)
    if request.status == "done":
        raise _done()
    if user_id is not None and not may_hold(await session.get(User, user_id)):
        raise ProblemError(422, "This account does not exist or does not take handoffs.", type_="invalid-assignee")
    return await _assign(session, request, user_id)


async def _assign(session: AsyncSession, request: CallbackRequest, user_id: str | None) -> CallbackView:
    done = await session.execute(
        update(CallbackRequest)
        .where(CallbackRequest.id == request.id, CallbackRequest.status == "open")
        .values(claimed_by=user_id, claimed_at=utcnow() if user_id is not None else None)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        await _reload(session, request.id)
        raise _done()
    await session.commit()
    await session.refresh(request)
    return await _view(session, request)
