"""Kafka client settings: SASL and TLS reach every client; a service's own principal wins."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from faststream.security import SASLScram512
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.runtime import faststream_security
from tpp_plumbing.settings import KafkaSettings, ServiceSettings


class _Pki:
    """A throwaway CA and a certificate it signed for ``localhost`` (server and client)."""

    def __init__(self, openssl_path: str, folder: Path) -> None:
        self.ca = folder / "ca.pem"
        self.cert = folder / "cert.pem"
        self.key = folder / "key.pem"
        self.other_key = folder / "other-key.pem"
        ca_key = folder / "ca-key.pem"
        request = folder / "cert.csr"
        extensions = folder / "ext.cnf"
        extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

        def openssl(*args: str | Path) -> None:
            subprocess.run(  # noqa: S603 - openssl with fixed arguments and our own files
                [openssl_path, *map(str, args)], check=True, capture_output=True
            )

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out",
                self.ca, "-days", "1", "-subj", "/CN=tpp test CA")  # fmt: skip
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", request,
                "-subj", "/CN=localhost")  # fmt: skip
        openssl("x509", "-req", "-in", request, "-CA", self.ca, "-CAkey", ca_key, "-out",
                self.cert, "-CAcreateserial", "-days", "1", "-extfile", extensions)  # fmt: skip
        openssl("genpkey", "-algorithm", "RSA", "-out", self.other_key)


@pytest.fixture(autouse=True)
def _no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests set what they need: deploy/test.sh exports the local stack's TPP_*."""
    for key in list(os.environ):
        if key.startswith("TPP_") and "KAFKA_" in key:
            monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip("the openssl command is needed to make a test CA and is not installed")
    return _Pki(found, tmp_path_factory.mktemp("pki"))


def test_plaintext_clients_get_no_tls_and_no_sasl() -> None:
    options = KafkaSettings(bootstrap="k:9092").client_options()

    assert options == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_credentials_reach_the_clients() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", username="enrollment", password=SecretStr("pw")
    )

    options = kafka.client_options()

    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("enrollment", "pw")
    assert "ssl_context" not in options
    assert "pw" not in repr(kafka), "the password stays out of logs and reprs"


def test_sasl_without_credentials_fails_clearly() -> None:
    with pytest.raises(ValueError, match="needs a username and password"):
        KafkaSettings(security_protocol="SASL_SSL").client_options()


def test_tls_settings_come_from_the_environment(pki: _Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TPP_KAFKA_USERNAME", "registry")
    monkeypatch.setenv("TPP_KAFKA_PASSWORD", "pw")
    monkeypatch.setenv("TPP_KAFKA_SSL_CAFILE", str(pki.ca))
    monkeypatch.setenv("TPP_KAFKA_SSL_CERTFILE", str(pki.cert))
    monkeypatch.setenv("TPP_KAFKA_SSL_KEYFILE", str(pki.key))
    monkeypatch.setenv("TPP_KAFKA_SSL_CHECK_HOSTNAME", "false")

    context = KafkaSettings().client_options()["ssl_context"]

    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False
    subjects = [ca["subject"] for ca in context.get_ca_certs()]
    assert subjects == [((("commonName", "tpp test CA"),),)]


def test_a_client_key_that_does_not_match_its_certificate_is_refused(pki: _Pki) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL", ssl_certfile=str(pki.cert), ssl_keyfile=str(pki.other_key)
    )

    with pytest.raises(ssl.SSLError):
        kafka.ssl_context()


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> str:
    """Connect with ``client`` to a TLS server using ``server``; the peer's subject CN."""
    peer: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("peercert") or {}
        peer.extend(v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName")
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=host
        )
        await asyncio.sleep(0.1)
        writer.close()
    finally:
        listener.close()
        await listener.wait_closed()
    return peer[0] if peer else ""


async def test_the_context_trusts_the_configured_ca_and_presents_the_client_certificate(
    pki: _Pki,
) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    server.load_cert_chain(str(pki.cert), str(pki.key))
    server.verify_mode = ssl.CERT_REQUIRED  # mutual TLS, as a broker with ssl.client.auth
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=str(pki.ca),
        ssl_certfile=str(pki.cert),
        ssl_keyfile=str(pki.key),
    )
    context = kafka.ssl_context()
    assert context is not None

    assert await _handshake(server, context, "localhost") == "localhost"
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(server, context, "not-the-broker.example")
    untrusting = KafkaSettings(security_protocol="SSL").ssl_context()  # system CAs only
    assert untrusting is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(server, untrusting, "localhost")


def test_faststream_gets_the_same_security() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL", username="reporting", password=SecretStr("pw")
    )

    security = faststream_security(kafka)

    assert isinstance(security, SASLScram512)
    assert (security.username, security.password, security.use_ssl) == ("reporting", "pw", True)
    assert faststream_security(KafkaSettings()) is None


def test_a_service_runs_as_its_own_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPP_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TPP_KAFKA_USERNAME", "admin")
    monkeypatch.setenv("TPP_KAFKA_PASSWORD", "admin-pw")

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TPP_SOMESERVICE_")

    monkeypatch.setenv("TPP_SOMESERVICE_KAFKA_USERNAME", "someservice")
    monkeypatch.setenv("TPP_SOMESERVICE_KAFKA_PASSWORD", "own-pw")
    options = Settings(database_url="postgresql+asyncpg://x/y").kafka.client_options()

    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "someservice",
        "own-pw",
    )


def test_settings_from_an_env_file_ignore_what_is_not_theirs() -> None:
    env = {
        "TPP_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
        "TPP_KAFKA_CONTROLLER_PORT": "29093",  # read by deploy/stack.sh only
        "TPP_KAFKA_TOPIC_PREFIX": "not-for-the-admin.",
        "TPP_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TPP_KAFKA_USERNAME": "admin",
        "TPP_KAFKA_PASSWORD": "pw",
    }

    kafka = KafkaSettings.from_env(env)

    assert (kafka.bootstrap, kafka.topic_prefix, kafka.username) == ("127.0.0.1:29092", "", "admin")
