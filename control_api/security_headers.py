"""The security headers every response carries, and the page policies that widen them where a page needs it.

``RequestContextMiddleware`` adds :data:`DEFAULT_HEADERS` to every response that did not set its own: an API
answer may load nothing and be framed by nobody. Pages set a policy of their own built by :func:`page_policy`:
same origin only, no inline script (Swagger UI's one inline script is allowed by its hash), never framed.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

API_POLICY: Final = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

DEFAULT_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": API_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def page_policy(*, script_hashes: tuple[str, ...] = (), inline_styles: bool = False) -> str:
    """A strict page policy: same origin only, never framed; extra inline scripts only by their hashes."""
    scripts = " ".join(("'self'", *(f"'{digest}'" for digest in script_hashes)))
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def script_hash(source: str) -> str:
    """The CSP source expression (``sha256-...``) allowing one inline script with exactly this text."""
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def page_headers(*, microphone: bool = False, policy: str | None = None) -> dict[str, str]:
    """The headers of an HTML page (``microphone``: the page may ask for it, e.g. the caller page)."""
    return {
        **DEFAULT_HEADERS,
        "Content-Security-Policy": policy or page_policy(),
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": f"camera=(), microphone={'(self)' if microphone else '()'}, geolocation=(), payment=()",
    }
