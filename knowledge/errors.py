"""One exception tree for the knowledge room, with a ``retryable`` flag.

Errors from libraries (pypdf, python-docx, HTTP clients, Weaviate) are translated once, at the edge, into
these types. Messages are written for the person who uploaded the document: they say what is wrong and what
to do about it, and never contain document text.
"""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base class of every error raised by ``knowledge``.

    Args:
        message: A human-actionable explanation.
        retryable: Whether trying the same operation again may succeed.

    """

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class DocumentError(KnowledgeError):
    """A document cannot be turned into text (corrupt, encrypted, empty, image-only, unsupported)."""


class UnsupportedFormatError(DocumentError):
    """The content is not one of the supported formats (whatever its file name says)."""


class DocumentTooLargeError(DocumentError):
    """The document, or what it expands to, is larger than allowed."""


class EmbeddingError(KnowledgeError):
    """The embedding backend failed or is unreachable."""

    retryable = True


class StoreError(KnowledgeError):
    """The vector store failed or is unreachable."""

    retryable = True


class FetchError(KnowledgeError):
    """A URL could not be fetched (refused by policy, unreachable, too large, wrong type)."""
