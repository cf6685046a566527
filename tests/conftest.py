"""Shared pytest fixtures.

``gcs_emulator``: a real local GCS server (the ``gcp-storage-emulator`` package, in-process) with
``STORAGE_EMULATOR_HOST`` pointing at it, so google-cloud-storage code runs unmodified. See
/work/shared/design/cloud-testing.md for what it does and doesn't emulate.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GCS_TEST_PROJECT = "recforge-test"
GCS_DEFAULT_BUCKET = "recforge-test-bucket"


@dataclass
class GcsEmulator:
    """A running emulator. ``bucket`` exists and is empty at the start of every test."""

    endpoint: str  # http://127.0.0.1:PORT, also in STORAGE_EMULATOR_HOST during the test
    port: int
    bucket: str
    server: Any  # gcp_storage_emulator.server.Server

    def client(self) -> Any:
        """A google.cloud.storage.Client talking to the emulator (anonymous credentials)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=GCS_TEST_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def uri(self, name: str, bucket: str | None = None) -> str:
        return f"gs://{bucket or self.bucket}/{name}"

    def upload(self, local: str | Path, name: str, bucket: str | None = None) -> str:
        """Upload a local file as ``name``; return its ``gs://`` URI."""
        self.client().bucket(bucket or self.bucket).blob(name).upload_from_filename(str(local))
        return self.uri(name, bucket)

    def upload_bytes(self, data: bytes, name: str, bucket: str | None = None) -> str:
        self.client().bucket(bucket or self.bucket).blob(name).upload_from_string(data)
        return self.uri(name, bucket)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _patch_emulator() -> None:
    """Work around two emulator quirks (see cloud-testing.md); idempotent, process-wide."""
    from gcp_storage_emulator import server as emu_server
    from gcp_storage_emulator.handlers import objects

    # Loopback keep-alive requests otherwise wait ~44 ms each on Nagle's algorithm.
    emu_server.RequestHandler.disable_nagle_algorithm = True
    if getattr(objects._media_upload, "_recforge_patched", False):
        return
    original = objects._media_upload

    def media_upload(request: Any, response: Any, storage: Any) -> Any:
        # A zero-byte media upload (TensorFlow's makedirs sends one) has no body; the emulator
        # would crash on len(None).
        if request.data is None:
            request._data = b""
        return original(request, response, storage)

    media_upload._recforge_patched = True  # type: ignore[attr-defined]
    objects._media_upload = media_upload


@pytest.fixture(scope="session")
def _gcs_emulator_server() -> Iterator[tuple[Any, int]]:
    try:
        from gcp_storage_emulator.server import create_server
    except ImportError as exc:  # fail loudly: a skipped cloud test would hide a missing install
        raise RuntimeError(
            "the gcs_emulator fixture needs gcp-storage-emulator (pip install -e '.[test]')"
        ) from exc
    _patch_emulator()
    last_error: OSError | None = None
    for _ in range(5):  # the free port may be taken between probing and binding
        port = _free_port()
        server = create_server("127.0.0.1", port, in_memory=True)
        try:
            server.start()
        except OSError as exc:
            last_error = exc
            continue
        try:
            yield server, port
        finally:
            server.stop()
        return
    raise RuntimeError(f"could not start the GCS emulator: {last_error}")


@pytest.fixture
def gcs_emulator(
    _gcs_emulator_server: tuple[Any, int], monkeypatch: pytest.MonkeyPatch
) -> GcsEmulator:
    """A local GCS with an empty bucket ``GCS_DEFAULT_BUCKET``; STORAGE_EMULATOR_HOST is set."""
    server, port = _gcs_emulator_server
    server.wipe()  # each test starts from an empty store
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", GCS_TEST_PROJECT)
    emulator = GcsEmulator(endpoint=endpoint, port=port, bucket=GCS_DEFAULT_BUCKET, server=server)
    emulator.client().create_bucket(GCS_DEFAULT_BUCKET)
    return emulator


@pytest.fixture(autouse=True)
def _fresh_hydra() -> Iterator[None]:
    """compiler.core.compose keeps Hydra initialized between calls (a sweep composes hundreds of
    points); tests that initialize Hydra themselves need it released first."""
    from compiler.core.compose import release

    release()
    yield


@pytest.fixture(autouse=True)
def _ledger_in_tmp(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiles and runs record experiments; keep the tests' records out of the checkout's
    .recforge/ledger.db (tests that pass ``ledger=`` or set the variable themselves win)."""
    root = tmp_path_factory.getbasetemp() / "ledger"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("RECFORGE_LEDGER_URL", f"sqlite:///{root}/ledger.db")
