"""The CSV import's fast email check agrees with EmailStr wherever it decides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError
from tpp_enrollment.service.import_rows import simple_email, validate

EMAIL = TypeAdapter(EmailStr)

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
local_parts = st.one_of(
    st.text(alphabet=ATEXT + ".", min_size=1, max_size=70),
    st.text(alphabet=ATEXT + '." @\\é', min_size=0, max_size=12),
)
labels = st.one_of(
    st.text(alphabet="abcXYZ019-", min_size=1, max_size=66),
    st.sampled_from(["xn--bcher-kva", "a_b", "ex--ample", "-a", "a-", "é"]),
)
tlds = st.one_of(
    st.text(alphabet="abcXYZ", min_size=1, max_size=64),
    st.sampled_from(["test", "local", "localhost", "onion", "invalid", "arpa", "123", "c0m"]),
)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]), st.lists(labels, min_size=0, max_size=4), tlds
)
roles = st.sampled_from(["NOC", "Postmaster", "abuse", "WebMaster", "hostmaster"])
addresses = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains),
    st.builds(lambda local, domain: f"{local}@{domain}", roles, domains),
    st.emails(),
    st.text(max_size=40),
)


def full(address: str) -> str | None:
    try:
        return EMAIL.validate_python(address)
    except ValidationError:
        return None


@settings(max_examples=3000, deadline=None)
@given(addresses)
def test_the_fast_path_gives_what_emailstr_gives_or_stays_out(address: str) -> None:
    fast = simple_email(address)
    if fast is not None:
        assert fast == full(address)


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("Nguyen.An@Example.ORG", "Nguyen.An@example.org"),
        ("a.b-c+tag@sub.mail-host.co", "a.b-c+tag@sub.mail-host.co"),
    ],
)
def test_common_addresses_take_the_fast_path(address: str, normalized: str) -> None:
    assert simple_email(address) == normalized == full(address)


@pytest.mark.parametrize(
    "address", ["a@b", "a@xn--bcher-kva.de", "a@host.test", "a..b@x.org", '"q"@x.org', "é@x.org"]
)
def test_anything_unusual_is_left_to_the_full_validator(address: str) -> None:
    assert simple_email(address) is None


def test_import_rows_read_the_same_with_the_fast_path() -> None:
    base = {
        "full_name": "Amina Njoroge",
        "country": "ke",
        "gender": "female",
        "profession": "expert",
        "passport_number": "A1234567",
        "session_id": "8b0f6f53-2f5c-4f0e-9d8e-2b8f6a3f1c11",
    }
    rows = [
        base | {"email": "Amina@Example.org"},
        base | {"email": "nope"},
        base | {"email": "amina@example.org", "country": "XX"},
        base | {"email": "amina@xn--bcher-kva.de"},
    ]
    good, bad_email, bad_country, idna = list(validate(rows, first_row=2))
    assert good.trainee.email == "Amina@example.org"  # type: ignore[union-attr]
    assert good.trainee.country == "KE"  # type: ignore[union-attr]
    assert bad_email.reason.startswith("email: value is not a valid email address")  # type: ignore[union-attr]
    assert bad_country.reason.startswith("country: Value error")  # type: ignore[union-attr]
    # email-validator shows IDNA domains in Unicode: such rows get its answer, unchanged.
    assert idna.trainee.email == full("amina@xn--bcher-kva.de") == "amina@bücher.de"  # type: ignore[union-attr]
