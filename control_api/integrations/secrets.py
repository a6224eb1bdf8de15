"""Secrets of integrations, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key setting is any string of at least 32 characters; the Fernet keys are derived from it with HKDF, so
an operator never has to produce Fernet's base64 format. ``MultiFernet`` encrypts with the current key and
decrypts with the current or any previous one, which is how keys rotate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.settings import IntegrationsSettings
from control_api.integrations.errors import ConfigError

_INFO = b"voxdesk integrations secrets v1"


def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Encrypts and decrypts the secrets of one integration (a JSON object of strings).

    Args:
        key: The current key (``integrations.secret_key``).
        previous_keys: Earlier keys, still accepted for decryption.

    """

    def __init__(self, key: str, previous_keys: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([_fernet(key), *(_fernet(k) for k in previous_keys)])

    def seal(self, secrets: dict[str, str]) -> str | None:
        """The encrypted form of ``secrets`` (None when there are none)."""
        if not secrets:
            return None
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def open(self, sealed: str | None) -> dict[str, str]:
        """The secrets sealed in ``sealed``.

        Raises:
            ConfigError: The secrets were sealed with a key that is no longer configured.

        """
        if not sealed:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise ConfigError(
                "The integration's secrets cannot be decrypted with the configured keys "
                "(integrations.secret_key changed?); enter them again."
            ) from None
        return {str(k): str(v) for k, v in data.items()}

    def rotate(self, sealed: str | None) -> str | None:
        """``sealed`` re-encrypted with the current key."""
        return self._fernet.rotate(sealed.encode()).decode() if sealed else None


def box_from_settings(section: IntegrationsSettings) -> SecretBox:
    """The secret box keyed from ``integrations.secret_key`` and the previous keys."""
    return SecretBox(
        section.secret_key.get_secret_value(), [k.get_secret_value() for k in section.previous_secret_keys]
    )
