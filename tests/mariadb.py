"""A real MariaDB server for the tests: Debian's `mariadbd`, on loopback, with its own data folder.

It holds the bioindex's tables in schema `bio`, reached by user `bioindex` with a password, over
TCP and only over TLS (`require_secure_transport=ON`, RDS MySQL 9.7's default), with a certificate
for 127.0.0.1 from a CA the tests make - as the Lambdas and jobs reach the bioindex's RDS database.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SCHEMA = "bio"
USER = "bioindex"


def _binary(name: str) -> str:
    for folder in ("/usr/sbin", "/usr/bin"):
        if os.access(f"{folder}/{name}", os.X_OK):
            return f"{folder}/{name}"
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: apt-get install mariadb-server (.ci/run does)")
    return found


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA, as RDS's root CAs are."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server_certificate(folder: Path) -> Path:
    """ca.pem, server.pem and server.key in `folder`: a certificate for 127.0.0.1 from a new CA.
    Returns the CA's file, the bundle a client verifies against."""
    ca, ca_key = make_ca("bgzip-workflow test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "server.pem").write_bytes(_pem(cert))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem"


class MariaDB:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.password = secrets.token_hex(12)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._proc: subprocess.Popen | None = None

    @property
    def socket_path(self) -> str:
        return str(self.root / "mysqld.sock")

    @staticmethod
    def _install(data: Path, user: list[str]) -> None:
        """The system tables in a new data folder. Tried three times: in one CI run of two test
        workers one install failed once (status 1, no other server running); its error is shown."""
        command = [
            _binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={data}",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
            *user,
        ]
        for attempt in range(3):
            shutil.rmtree(data, ignore_errors=True)
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return
            time.sleep(1 + attempt)
        raise RuntimeError(f"mariadb-install-db failed 3 times: {(done.stdout + done.stderr)[-2000:]}")

    def start(self) -> MariaDB:
        data = self.root / "data"
        user = ["--user=root"] if os.geteuid() == 0 else []
        self._install(data, user)
        self.ca_file = make_server_certificate(self.root)
        self._proc = subprocess.Popen(
            [
                _binary("mariadbd"),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={self.socket_path}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--log-error={self.root / 'error.log'}",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                f"--ssl-ca={self.root / 'ca.pem'}",
                f"--ssl-cert={self.root / 'server.pem'}",
                f"--ssl-key={self.root / 'server.key'}",
                "--require-secure-transport=ON",
                *user,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pymysql.connect(unix_socket=self.socket_path, user="root", password="")
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    log = (self.root / "error.log").read_text() if (self.root / "error.log").exists() else ""
                    raise RuntimeError(f"mariadbd did not start: {log[-2000:]}") from None
                time.sleep(0.2)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {SCHEMA}")
            cur.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY %s", (self.password,))
            cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'127.0.0.1'")
        conn.commit()
        conn.close()
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=30)
            self._proc = None

    def admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=self.socket_path, user="root", password="", autocommit=True)

    def create_schema(self, name: str) -> str:
        """A fresh schema per test, so tests never see each other's indexes."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        return name

    @property
    def ca_pem(self) -> str:
        """The CA bundle a client verifies this server against (BioindexDatabaseCaBundle's content)."""
        return self.ca_file.read_text()

    def url(self, schema: str = SCHEMA) -> str:
        return f"mysql://{USER}:{self.password}@127.0.0.1:{self.port}/{schema}?ssl_ca={self.ca_file}"

    def secret(self) -> dict:
        """The bioindex's RDS-format secret for this server."""
        return {
            "username": USER,
            "password": self.password,
            "host": "127.0.0.1",
            "port": self.port,
            "engine": "mariadb",
            "dbInstanceIdentifier": "bioindex-test",
        }
