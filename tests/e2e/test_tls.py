"""PostgreSQL and Redis over TLS: the connection settings the services use (DATABASE_URL with
sslmode and sslrootcert, REDIS_URL as rediss:// with ssl_ca_certs) reach a server that speaks
TLS only, with the certificate checked, on every path: the pool, the Redis client and the
ingest's own script channel. The servers and their certificates are the test's own."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tracking.script_pipe import ScriptPipe

from casemgr.db import create_pool
from casemgr.redis_client import create_redis
from tests.servers import PrivatePostgres, free_port, wait_for_port


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("casemgr test CA"))
        .issuer_name(_name("casemgr test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[2].chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_postgres(certificates: tuple[Path, Path, Path]) -> Iterator[tuple[PrivatePostgres, Path]]:
    ca, cert, key = certificates
    server = PrivatePostgres()
    # The server reads its key as its own user, from its own folder.
    for source in (cert, key):
        shutil.copy(source, server.root / source.name)
        if server.runs_as_postgres:
            shutil.chown(server.root / source.name, "postgres", "postgres")
    (server.root / key.name).chmod(0o600)
    server.start(
        f"-c ssl=on -c ssl_cert_file={server.root / cert.name} -c ssl_key_file={server.root / key.name}"
    )
    try:
        yield server, ca
    finally:
        server.remove()


@pytest.fixture(scope="module")
def tls_redis(
    certificates: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ca, cert, key = certificates
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--dir",
            str(tmp_path_factory.mktemp("tls-redis")),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, "redis-server with TLS", process)
        yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_database_pool_speaks_tls_with_the_certificate_checked(
    tls_postgres: tuple[PrivatePostgres, Path],
) -> None:
    server, ca = tls_postgres
    pool = await create_pool(f"{server.url}?sslmode=verify-full&sslrootcert={ca}", min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    finally:
        await pool.close()


async def test_redis_and_the_ingest_script_channel_speak_tls_with_the_certificate_checked(
    tls_redis: str,
) -> None:
    client = create_redis(tls_redis)
    try:
        assert await client.ping()
        await client.set("tls:probe", b"over TLS")
    finally:
        await client.aclose()
    pipe = ScriptPipe(tls_redis)
    try:
        assert await pipe.get("tls:probe") == b"over TLS"
    finally:
        pipe.close()


async def test_a_certificate_from_another_authority_is_refused(tls_redis: str, tmp_path: Path) -> None:
    other_ca, _, _ = make_certificates(tmp_path)
    client = create_redis(tls_redis.split("?")[0] + f"?ssl_ca_certs={other_ca}&ssl_cert_reqs=required")
    try:
        with pytest.raises(Exception, match="(?i)certificate|ssl"):
            await client.ping()
    finally:
        await client.aclose()
