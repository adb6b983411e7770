"""Personal data at rest: sealing under a key ring, rotation, keyed passport hashes."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from tpp_enrollment.personal import (
    EMAIL,
    PASSPORT,
    KeyConfigError,
    KeyRing,
    PersonalData,
    UndecryptableError,
    new_key,
)

OLD, NEW, SECRET = new_key(), new_key(), new_key()


def personal(ring: str, secret: str = SECRET) -> PersonalData:
    return PersonalData.from_config(ring, secret)


def test_a_sealed_value_opens_to_the_plaintext_and_does_not_contain_it() -> None:
    data = personal(f"k1:{OLD}")
    trainee = uuid.uuid4()
    sealed = data.seal(trainee, PASSPORT, "AB1234567")
    assert sealed is not None
    assert b"AB1234567" not in sealed
    assert data.open(trainee, PASSPORT, sealed) == "AB1234567"
    # Sealing twice gives different bytes (a fresh nonce each time).
    assert data.seal(trainee, PASSPORT, "AB1234567") != sealed
    assert data.open(trainee, "birth_date", data.seal(trainee, "birth_date", date(1990, 2, 3))) == (
        "1990-02-03"
    )
    assert data.seal(trainee, EMAIL, None) is None


def test_a_sealed_value_does_not_open_for_another_trainee_or_column() -> None:
    data = personal(f"k1:{OLD}")
    trainee = uuid.uuid4()
    sealed = data.seal(trainee, PASSPORT, "AB1234567")
    with pytest.raises(UndecryptableError):
        data.open(uuid.uuid4(), PASSPORT, sealed)
    with pytest.raises(UndecryptableError):
        data.open(trainee, EMAIL, sealed)
    assert sealed is not None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(UndecryptableError):
        data.open(trainee, PASSPORT, tampered)


def test_rotation_newest_key_seals_every_key_opens_reseal_moves_to_the_newest() -> None:
    before = personal(f"old:{OLD}")
    trainee = uuid.uuid4()
    sealed = before.seal(trainee, PASSPORT, "X99")
    assert sealed is not None
    assert KeyRing.key_id(sealed) == "old"

    during = personal(f"new:{NEW},old:{OLD}")
    assert during.keys.current == "new"
    assert during.open(trainee, PASSPORT, sealed) == "X99"  # old values still open
    fresh = during.seal(trainee, PASSPORT, "X99")
    assert fresh is not None
    assert KeyRing.key_id(fresh) == "new"
    resealed = during.reseal(trainee, PASSPORT, sealed)
    assert resealed is not None
    assert KeyRing.key_id(resealed) == "new"
    assert during.reseal(trainee, PASSPORT, resealed) is resealed  # already current: kept

    after = personal(f"new:{NEW}")  # the old key dropped
    assert after.open(trainee, PASSPORT, resealed) == "X99"
    with pytest.raises(UndecryptableError, match="no key 'old'"):
        after.open(trainee, PASSPORT, sealed)


def test_the_passport_hash_is_keyed_normalized_and_per_country() -> None:
    data = personal(f"k1:{OLD}")
    assert data.passport_hash("ab123", "ke") == data.passport_hash("AB123", "KE")
    assert data.passport_hash("AB123", "KE") != data.passport_hash("AB123", "UG")
    assert data.passport_hash("AB123", "KE") != data.passport_hash("AB1234", "KE")
    other_secret = personal(f"k1:{OLD}", new_key())
    assert other_secret.passport_hash("AB123", "KE") != data.passport_hash("AB123", "KE")
    assert len(data.passport_hash("AB123", "KE")) == 32


@pytest.mark.parametrize(
    "ring",
    ["", "nokey", f"bad id!:{OLD}", "k1:not-base64-at-all!!", "k1:c2hvcnQ", f"a:{OLD},a:{NEW}"],
)
def test_a_bad_key_ring_is_refused_without_showing_the_key(ring: str) -> None:
    with pytest.raises(KeyConfigError) as error:
        KeyRing.parse(ring)
    assert OLD not in str(error.value)
    assert NEW not in str(error.value)


def test_a_short_hash_secret_is_refused() -> None:
    with pytest.raises(KeyConfigError, match="at least 32 bytes"):
        personal(f"k1:{OLD}", "c2hvcnQ")
