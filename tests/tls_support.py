"""Certificates for TLS tests, made with the openssl command: a CA, server certificates for
127.0.0.1/localhost signed by it, and client certificates from a trusted and an untrusted CA."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # fast to make


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *EC_KEY, "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return crt, key


def make_certificate(directory: Path, name: str, ca: tuple[Path, Path], usage: str) -> tuple[Path, Path]:
    """A certificate for `usage` (serverAuth or clientAuth) signed by `ca`; returns (crt, key)."""
    crt, key, csr, ext = (directory / f"{name}.{suffix}" for suffix in ("crt", "key", "csr", "ext"))
    ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _openssl("req", "-new", *EC_KEY, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
        "-out", str(crt), "-days", "2", "-extfile", str(ext),
        cwd=directory,
    )  # fmt: skip
    return crt, key


@dataclass(frozen=True)
class Certificates:
    ca: Path  # trusts server, server2 and client
    server: tuple[Path, Path]
    server2: tuple[Path, Path]  # a second server certificate, for rotation
    client: tuple[Path, Path]
    rogue_client: tuple[Path, Path]  # signed by a CA the exporter does not trust
    rogue_ca: Path


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "test-ca")
    rogue_ca = make_ca(directory, "rogue-ca")
    return Certificates(
        ca=ca[0],
        server=make_certificate(directory, "server", ca, "serverAuth"),
        server2=make_certificate(directory, "server2", ca, "serverAuth"),
        client=make_certificate(directory, "client", ca, "clientAuth"),
        rogue_client=make_certificate(directory, "rogue-client", rogue_ca, "clientAuth"),
        rogue_ca=rogue_ca[0],
    )


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """A bcrypt hash as htpasswd makes it; cost 4 (the minimum) keeps tests fast."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
