"""Password hashing (argon2) and signed access tokens (JWT, HS256)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
ALGORITHM = "HS256"
# A valid hash to verify against when the account does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("voxdesk-timing-equaliser")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches ``password_hash`` (constant work when the hash is missing)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with outdated parameters."""
    return _hasher.check_needs_rehash(password_hash)


def create_access_token(
    *, subject: str, role: str, secret: str, minutes: int, extra: dict[str, Any] | None = None
) -> str:
    """A signed, short-lived access token for ``subject``."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "role": role,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "typ": "access",
        **(extra or {}),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, *, secret: str) -> dict[str, Any]:
    """The claims of a valid access token; raises ``jwt.InvalidTokenError`` otherwise."""
    claims: dict[str, Any] = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    if claims.get("typ") != "access":
        raise jwt.InvalidTokenError("not an access token")
    return claims


def new_opaque_token() -> str:
    """A random URL-safe token (refresh tokens, reset tokens, CSRF tokens)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256 hex digest of an opaque token; only digests are stored."""
    return hashlib.sha256(token.encode()).hexdigest()
