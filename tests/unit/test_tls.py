"""The dev CA: a server certificate for localhost that verifies, private keys kept private."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path

import pytest

from chase.tls import client_context, ensure_dev_certs, server_context


def test_certs_are_made_once_and_keys_are_private(tmp_path: Path) -> None:
    assert ensure_dev_certs(tmp_path) is True
    assert ensure_dev_certs(tmp_path) is False
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600


async def test_clients_verify_against_the_dev_ca(tmp_path: Path) -> None:
    ensure_dev_certs(tmp_path)
    server = await asyncio.start_server(
        _hello, "127.0.0.1", 0, ssl=server_context(tmp_path / "server.pem", tmp_path / "server-key.pem")
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        for host in ("127.0.0.1", "localhost"):
            reader, writer = await asyncio.open_connection(host, port, ssl=client_context(tmp_path / "ca.pem"))
            assert await reader.read() == b"hello"
            writer.close()
        # The system trust store does not know the dev CA: verification fails, as it must.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=client_context(None))


async def _hello(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello")
    await writer.drain()
    writer.close()


def test_missing_files_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="chase certs"):
        server_context(tmp_path / "server.pem", tmp_path / "server-key.pem")
    with pytest.raises(FileNotFoundError, match="chase certs"):
        client_context(tmp_path / "ca.pem")


def test_service_certificates_hold_no_ca_key_and_nobody_elses(tmp_path: Path) -> None:
    from cryptography import x509

    from chase.tls import issue_service_certs

    ca, out = tmp_path / "ca", tmp_path / "out"
    owner = (os.getuid(), os.getgid())
    assert issue_service_certs(ca, out, ("auth", "gateway-1"), ("chat.example",), owner=owner) == ["auth", "gateway-1"]
    for service in ("auth", "gateway-1"):
        folder = out / service
        assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]
        assert stat.S_IMODE((folder / "server-key.pem").stat().st_mode) == 0o600
        assert (folder / "ca.pem").read_bytes() == (ca / "ca.pem").read_bytes()
        names = x509.load_pem_x509_certificate((folder / "server.pem").read_bytes()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert names == [service, "chat.example"]
    server_context(out / "auth" / "server.pem", out / "auth" / "server-key.pem")  # key matches certificate
    # A second run keeps what this CA signed and issues only what is new.
    before = (out / "auth" / "server.pem").read_bytes()
    assert issue_service_certs(ca, out, ("auth", "persistence-1"), owner=owner) == ["persistence-1"]
    assert (out / "auth" / "server.pem").read_bytes() == before
