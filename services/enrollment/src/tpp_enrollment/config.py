"""Enrollment settings, from ``TPP_ENROLLMENT_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.settings import ServiceSettings

from tpp_enrollment.personal import PersonalData


class Settings(ServiceSettings):
    """Settings of the enrollment service."""

    model_config = SettingsConfigDict(env_prefix="TPP_ENROLLMENT_")

    port: int = Field(8002, description="HTTP port the enrollment service listens on.")
    personal_data_keys: SecretStr = Field(
        description="Key ring that encrypts passport numbers, emails and birth dates at rest:"
        " 'id:key,id:key,...', newest first, each key 32 random bytes in base64url"
        " (python -m tpp_enrollment.keys new-key). The first key encrypts, every key"
        " decrypts. To rotate: put a new key first, restart, run"
        " 'python -m tpp_enrollment.keys rotate', then drop the old key."
    )
    passport_hash_key: SecretStr = Field(
        description="Secret of the keyed hash (HMAC-SHA256) that matches passport number +"
        " country for deduplication; at least 32 random bytes in base64url, separate from"
        " the encryption keys. Changing it needs 'python -m tpp_enrollment.keys rotate'"
        " (which hashes every passport again) before duplicates are matched again."
    )

    def personal_data(self) -> PersonalData:
        """The cipher and hasher of trainees' personal data."""
        return PersonalData.from_config(
            self.personal_data_keys.get_secret_value(), self.passport_hash_key.get_secret_value()
        )

    max_page_size: int = Field(
        500, ge=1, description="Largest page a list endpoint returns (422 naming `limit` above)."
    )
    csv_max_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Largest CSV file accepted by POST /imports, in bytes: 413 naming the"
        " limit above it (the request may add 64 KiB of multipart framing).",
    )
    csv_max_rows: int = Field(
        50_000,
        ge=1,
        description="Most data rows (after the header) in one CSV upload: 413 naming the limit"
        " above it.",
    )
