"""A tiny fake 4D REST server on a real socket (plain http or TLS), for tests of what the simulator
cannot show yet: TLS with an internal CA, ``$directory/logout``.

It implements only login (``POST /rest/$directory/login``, sets ``WASID4D``), logout (``GET
/rest/$directory/logout``, frees the session) and ``GET /rest/$catalog``, and records every request.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER, PASSWORD = "sync", "fake-4d-password"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeFourDState:
    sessions: set[str] = field(default_factory=set)
    logins: int = 0
    logouts: int = 0
    requests: list[Seen] = field(default_factory=list)


def _session(headers: Any) -> str | None:
    for part in (headers.get("Cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "WASID4D":
            return value
    return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: Any, cookie: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", f"WASID4D={cookie}; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        self.server.state.requests.append(Seen(self.command, self.path, dict(self.headers.items())))

    def do_POST(self) -> None:
        self._record()
        state = self.server.state
        if self.path == "/rest/$directory/login":
            if self.headers.get("username-4D") != USER or self.headers.get("password-4D") != PASSWORD:
                self._answer(200, {"result": False})
                return
            state.logins += 1
            value = f"S{state.logins}"
            state.sessions.add(value)
            self._answer(200, {"result": True}, cookie=value)
            return
        self._answer(404, {"__ERROR": [{"message": "not found", "errCode": 1800}]})

    def do_GET(self) -> None:
        self._record()
        state = self.server.state
        session = _session(self.headers)
        if self.path == "/rest/$directory/logout":
            if session in state.sessions:
                state.sessions.discard(session)
                state.logouts += 1
                self._answer(200, {"result": True})
            else:
                self._answer(401, {"__ERROR": [{"message": "No session", "errCode": 1822}]})
            return
        if session not in state.sessions:
            self._answer(401, {"__ERROR": [{"message": "Permissions error", "errCode": 1822}]})
            return
        if self.path.startswith("/rest/$catalog"):
            self._answer(200, {"dataClasses": [{"name": "Products"}, {"name": "Customers"}]})
            return
        self._answer(404, {"__ERROR": [{"message": "not found", "errCode": 1800}]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeFourDState


class FakeFourD:
    """``with FakeFourD() as server:`` serves on 127.0.0.1 (TLS when ``tls`` is given)."""

    def __init__(self, tls: TlsFiles | None = None) -> None:
        self.state = FakeFourDState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeFourD:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_internal_ca(directory: Path) -> TlsFiles:
    """A private CA and a certificate it signed for 127.0.0.1 / localhost (PEM files)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test internal CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files
