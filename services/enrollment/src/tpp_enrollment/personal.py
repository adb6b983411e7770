"""Personal data at rest: field encryption under a key ring, keyed hashes of passports.

Passport numbers, email addresses and birth dates are stored encrypted (AES-256-GCM from
``cryptography``). A sealed value is ``0x01 | len(key id) | key id | nonce (12) | ciphertext
and tag``: the key id says which key of the ring opens it, so several keys can be live at
once. The newest key (the first of the ring) seals; every key of the ring opens. The
associated data binds a value to its trainee and its column, so a ciphertext copied to
another row or column does not open.

Deduplication (one trainee per passport number + country) matches an HMAC-SHA256 of the
normalized passport number and country under a separate secret: equal people give equal
hashes, and the hash alone does not give the passport number back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import uuid
from dataclasses import dataclass
from datetime import date

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = 1
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")

#: The encrypted columns of the trainee table and what they hold.
PASSPORT = "passport_number"
EMAIL = "email"
BIRTH_DATE = "birth_date"
SEALED_FIELDS = (PASSPORT, EMAIL, BIRTH_DATE)


class KeyConfigError(ValueError):
    """A key ring or hash secret that cannot be used (the message never shows a key)."""


class UndecryptableError(ValueError):
    """A sealed value no key of the ring opens (unknown key id, or tampered with)."""


def _decode_key(text: str, what: str, *, exact: int | None) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{what} is not base64") from None
    if exact is not None and len(raw) != exact:
        raise KeyConfigError(f"{what} must be {exact} bytes, not {len(raw)}")
    if exact is None and len(raw) < KEY_BYTES:
        raise KeyConfigError(f"{what} must be at least {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def new_key() -> str:
    """A new random 256-bit key, base64url (for a key ring entry or the hash secret)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


@dataclass(frozen=True)
class KeyRing:
    """Encryption keys by id, newest first: the first seals, any opens."""

    ids: tuple[str, ...]
    _ciphers: dict[str, AESGCM]

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """``id:base64url-key,id:base64url-key,...``, newest first (keys of 32 bytes)."""
        ids: list[str] = []
        ciphers: dict[str, AESGCM] = {}
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            key_id, sep, key = entry.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise KeyConfigError(
                    "each key is 'id:base64url', the id of 1-32 letters, digits, '_', '.', '-'"
                )
            if key_id in ciphers:
                raise KeyConfigError(f"key id {key_id!r} appears twice")
            ciphers[key_id] = AESGCM(_decode_key(key, f"key {key_id!r}", exact=KEY_BYTES))
            ids.append(key_id)
        if not ids:
            raise KeyConfigError("the key ring is empty")
        return cls(tuple(ids), ciphers)

    @property
    def current(self) -> str:
        """The id of the key that seals new values."""
        return self.ids[0]

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt under the newest key; ``context`` must be given again to open."""
        key_id = self.current.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, plaintext, context)
        return bytes((FORMAT, len(key_id))) + key_id + nonce + sealed

    def open(self, token: bytes, context: bytes) -> bytes:
        """Decrypt a sealed value with the key it names."""
        key_id = self.key_id(token)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UndecryptableError(f"no key {key_id!r} in the key ring")
        start = 2 + len(key_id)
        nonce, sealed = token[start : start + NONCE_BYTES], token[start + NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, sealed, context)
        except InvalidTag:
            raise UndecryptableError(f"the value does not open with key {key_id!r}") from None

    @staticmethod
    def key_id(token: bytes) -> str:
        """The id of the key that sealed ``token``."""
        if len(token) < 2 or token[0] != FORMAT:
            raise UndecryptableError("not a sealed value of a known format")
        return token[2 : 2 + token[1]].decode("ascii", "replace")


class PersonalData:
    """Seals and opens a trainee's personal fields; hashes passports for matching."""

    def __init__(self, keys: KeyRing, hash_secret: bytes) -> None:
        self.keys = keys
        self._hash_secret = hash_secret

    @classmethod
    def from_config(cls, key_ring: str, hash_secret: str) -> PersonalData:
        """From the settings' strings (see ``tpp_enrollment.config``)."""
        secret = _decode_key(hash_secret, "the passport hash secret", exact=None)
        return cls(KeyRing.parse(key_ring), secret)

    def passport_hash(self, passport_number: str, country: str) -> bytes:
        """The keyed hash deduplication matches on (normalized: upper case, no blanks)."""
        normalized = "".join(passport_number.split()).upper()
        message = f"{normalized}\x1f{country.strip().upper()}".encode()
        return hmac.digest(self._hash_secret, message, hashlib.sha256)

    def seal(self, trainee_id: uuid.UUID, column: str, value: str | date | None) -> bytes | None:
        """One personal field of one trainee, encrypted (None stays None)."""
        if value is None:
            return None
        text = value.isoformat() if isinstance(value, date) else value
        return self.keys.seal(text.encode(), _context(trainee_id, column))

    def open(self, trainee_id: uuid.UUID, column: str, token: bytes | None) -> str | None:
        """One personal field of one trainee, decrypted (None stays None)."""
        if token is None:
            return None
        return self.keys.open(bytes(token), _context(trainee_id, column)).decode()

    def reseal(self, trainee_id: uuid.UUID, column: str, token: bytes | None) -> bytes | None:
        """The value sealed again under the newest key (unchanged if it already is)."""
        if token is None or KeyRing.key_id(bytes(token)) == self.keys.current:
            return token
        return self.seal(trainee_id, column, self.open(trainee_id, column, token))

    def seal_trainee(
        self,
        trainee_id: uuid.UUID,
        passport_number: str,
        country: str,
        email: str | None,
        birth_date: date | None,
    ) -> dict[str, bytes | None]:
        """The stored form of a trainee's sealed fields and passport hash."""
        return {
            "passport_hash": self.passport_hash(passport_number, country),
            "passport_number_sealed": self.seal(trainee_id, PASSPORT, passport_number.upper()),
            "email_sealed": self.seal(trainee_id, EMAIL, email),
            "birth_date_sealed": self.seal(trainee_id, BIRTH_DATE, birth_date),
        }

    def open_trainee(self, row: dict[str, object]) -> dict[str, object]:
        """A stored trainee row with its sealed fields opened (as the API shows them)."""
        trainee_id = row["id"]
        assert isinstance(trainee_id, uuid.UUID)
        opened = {
            column: self.open(trainee_id, column, _token(row.get(f"{column}_sealed")))
            for column in SEALED_FIELDS
        }
        return row | opened


def _token(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a sealed value is bytes, not {type(value).__name__}")


def _context(trainee_id: uuid.UUID, column: str) -> bytes:
    return trainee_id.bytes + column.encode()
