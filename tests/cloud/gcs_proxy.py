"""A loopback TLS-intercepting proxy that lets TensorFlow's ``gs://`` filesystem reach the GCS
emulator. Run it as its own process (cloud-testing.md: in-process it deadlocks when TensorFlow
closes a GFile from garbage collection):

    python tests/cloud/gcs_proxy.py --upstream http://127.0.0.1:PORT --ca-out DIR/ca.pem

It prints ``PORT <n>`` once listening. The job process then gets ``https_proxy`` pointing here,
``CURL_CA_BUNDLE`` = the CA file, ``NO_GCE_CHECK=true`` and ``GOOGLE_AUTH_TOKEN_FOR_TESTING``.

TensorFlow's libcurl sends ``CONNECT www.googleapis.com:443`` (JSON API) and
``CONNECT storage.googleapis.com:443`` (media); we answer with a certificate for those names
signed by a throwaway CA, read the HTTP requests inside the tunnel and forward them as plain HTTP
to the emulator. Any other host is refused: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import ipaddress
import os
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

INTERCEPTED = ("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com")
#: Hop-by-hop headers are about one connection, never forwarded (RFC 9110 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "expect", "proxy-authorization", "content-length"}


def make_certificates(out_dir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf certificate for the intercepted hosts (valid one day)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recforge test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(h) for h in INTERCEPTED]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INTERCEPTED[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = out_dir / "ca.pem", out_dir / "leaf.pem", out_dir / "leaf.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                          + ca.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def read_headers(rfile) -> list[tuple[str, str]] | None:  # noqa: ANN001 - a binary file
    headers = []
    while True:
        line = rfile.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def read_body(rfile, headers: list[tuple[str, str]]) -> bytes:  # noqa: ANN001
    """The request body. Chunked wins over Content-Length: TensorFlow's upload PUT sends
    both, and the emulator would read the chunk framing as data."""
    if (header(headers, "transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(body)
            body += rfile.read(size)
            rfile.readline()
    length = int(header(headers, "content-length") or 0)
    return rfile.read(length) if length else b""


class Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str, context: ssl.SSLContext) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.context = context
        super().__init__(("127.0.0.1", 0), ProxyHandler)


class ProxyHandler(socketserver.StreamRequestHandler):
    server: Proxy

    def handle(self) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line = self.rfile.readline(65537).decode("latin-1").strip()
        if read_headers(self.rfile) is None or not line:
            return
        method, target, _ = (line.split(" ") + ["", ""])[:3]
        host = target.rsplit(":", 1)[0]
        if method != "CONNECT" or host not in INTERCEPTED:
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        try:
            tls = self.server.context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return
        rfile, wfile = tls.makefile("rb"), tls.makefile("wb")
        try:
            while self.forward_one(host, rfile, wfile):
                pass
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            for f in (rfile, wfile):
                try:
                    f.close()
                except OSError:
                    pass
            try:
                tls.close()
            except OSError:
                pass

    def forward_one(self, host: str, rfile, wfile) -> bool:  # noqa: ANN001
        line = rfile.readline(65537).decode("latin-1").strip()
        if not line:
            return False
        method, path, _ = line.split(" ", 2)
        headers = read_headers(rfile)
        if headers is None:
            return False
        if (header(headers, "expect") or "").lower() == "100-continue":
            wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            wfile.flush()
        body = read_body(rfile, headers)
        out = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP}
        out["Host"] = host  # the emulator builds resumable-upload Locations from it
        out["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        try:
            conn.request(method, path, body=body, headers=out)
            response = conn.getresponse()
            data = response.read()
            status, reason, resp_headers = response.status, response.reason, response.getheaders()
        finally:
            conn.close()
        lines = [f"HTTP/1.1 {status} {reason}"]
        for key, value in resp_headers:
            low = key.lower()
            if low in HOP_BY_HOP:
                continue
            if low == "location":
                # The emulator answers http://<Host>/...; TensorFlow must come back through us.
                value = value.replace(f"http://{host}", f"https://{host}", 1)
            lines.append(f"{key}: {value}")
        if method != "HEAD":
            lines.append(f"Content-Length: {len(data)}")
        else:
            length = next((v for k, v in resp_headers if k.lower() == "content-length"), "0")
            lines.append(f"Content-Length: {length}")
            data = b""
        wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        wfile.flush()
        return (header(headers, "connection") or "").lower() != "close"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="emulator URL, http://127.0.0.1:P")
    parser.add_argument("--ca-out", required=True, help="where to write the CA certificate")
    args = parser.parse_args(argv)
    ca_out = Path(args.ca_out)
    with tempfile.TemporaryDirectory(prefix="gcs-proxy-") as tmp:
        ca, cert, key = make_certificates(Path(tmp))
        ca_out.parent.mkdir(parents=True, exist_ok=True)
        ca_out.write_bytes(ca.read_bytes())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = Proxy(args.upstream, context)
    print(f"PORT {server.server_address[1]}", flush=True)
    # Stop when the parent closes our stdin (or on SIGTERM): no orphan proxies.
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
