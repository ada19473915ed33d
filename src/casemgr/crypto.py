"""Values sealed with AES-256-GCM in the application before they reach PostgreSQL.

A sealed value is ``key_id_length(1) | key_id | nonce(12) | ciphertext+tag``. The key id
travels with the value so that keys can rotate: new values are sealed with the first key
of the keyring, old values open with whichever key sealed them. The associated data binds
a value to its place (for example ``accounts.totp_secret:17``), so a sealed value copied
into another row or column does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casemgr.config import DataKey

_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value could not be opened: unknown key, or altered or misplaced value."""


class Keyring:
    def __init__(self, keys: tuple[DataKey, ...]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._active = keys[0]
        self._ciphers = {k.key_id: AESGCM(k.key) for k in keys}

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        key_id = self._active.key_id.encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._active.key_id].encrypt(nonce, plaintext, associated_data)
        return bytes([len(key_id)]) + key_id + nonce + sealed

    def open(self, value: bytes, associated_data: bytes) -> bytes:
        if len(value) < 1 + 1 + _NONCE_BYTES + 16:
            raise SealError("sealed value is too short")
        id_len = value[0]
        key_id = value[1 : 1 + id_len].decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SealError(f"no key {key_id!r} in the keyring")
        nonce = value[1 + id_len : 1 + id_len + _NONCE_BYTES]
        try:
            return cipher.decrypt(nonce, value[1 + id_len + _NONCE_BYTES :], associated_data)
        except InvalidTag:
            raise SealError("sealed value was altered or belongs elsewhere") from None
