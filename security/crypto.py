"""Encryption of small secrets at rest (TOTP seeds) with AES-256-GCM under the app key."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"


class SecretBoxError(ValueError):
    """A stored secret cannot be decrypted (wrong app key or tampered value)."""


class SecretBox:
    """Encrypts short strings bound to a context (e.g. the username) so a ciphertext copied to
    another row does not decrypt there."""

    def __init__(self, app_key: str, purpose: bytes = b"spotlight totp secret"):
        # HKDF separates this key from any other use of the same app key.
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            app_key.encode()
        )
        self._aead = AESGCM(derived)

    def encrypt(self, plaintext: str, context: str) -> str:
        """``v1:<base64(nonce || ciphertext)>``; a fresh random nonce every time."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}:" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, context: str) -> str:
        """The plaintext, or SecretBoxError when the key or context does not match."""
        version, _, body = token.partition(":")
        if version != _VERSION:
            raise SecretBoxError("unknown secret format")
        raw = base64.b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise SecretBoxError("stored secret does not decrypt with this app key") from exc
