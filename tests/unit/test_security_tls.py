"""TLS to Mozilla's intermediate profile, short-lived dev certificates, private keys 0600."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from chase.tls import client_context, ensure_dev_certs, server_context


def test_private_keys_are_0600_whatever_was_there_before(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        for name in ("ca-key.pem", "server-key.pem"):
            (tmp_path / name).write_bytes(b"old")
            (tmp_path / name).chmod(0o666)
        assert ensure_dev_certs(tmp_path, force=True)
    finally:
        os.umask(old_umask)
    for name in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_server_certificate_is_short_lived_and_renewed_from_the_same_ca(tmp_path: Path) -> None:
    ensure_dev_certs(tmp_path)
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=91)
    ca_before = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "server.pem").unlink()
    assert ensure_dev_certs(tmp_path)
    assert (tmp_path / "ca.pem").read_bytes() == ca_before  # clients keep trusting the same CA
    renewed = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    assert renewed.not_valid_after_utc > datetime.now(UTC) + timedelta(days=80)


def test_only_ecdhe_with_aead_in_tls12() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    import chase.tls as tls

    context.set_ciphers(tls.SERVER_CIPHERS)
    for cipher in context.get_ciphers():
        if cipher["protocol"] == "TLSv1.2":
            assert cipher["kea"] == "kx-ecdhe" and cipher["aead"], cipher["name"]


async def _handshake(certs: Path, adjust) -> str | None:  # noqa: ANN001
    server = await asyncio.start_server(
        lambda _r, w: w.close(), "127.0.0.1", 0,
        ssl=server_context(certs / "server.pem", certs / "server-key.pem"))
    port = server.sockets[0].getsockname()[1]
    client = client_context(certs / "ca.pem")
    adjust(client)
    async with server:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        except (ssl.SSLError, ConnectionError):
            return None
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return version


@pytest.mark.parametrize("name, adjust", [
    ("TLS 1.1", lambda c: (setattr(c, "minimum_version", ssl.TLSVersion.TLSv1),
                           setattr(c, "maximum_version", ssl.TLSVersion.TLSv1_1))),
    ("CBC in TLS 1.2", lambda c: (setattr(c, "maximum_version", ssl.TLSVersion.TLSv1_2),
                                  c.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"))),
    ("secp521r1 only", lambda c: c.set_ecdh_curve("secp521r1")),
])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.1 on purpose
async def test_weak_choices_are_refused(dev_certs: Path, name: str, adjust) -> None:  # noqa: ANN001
    assert await _handshake(dev_certs, adjust) is None, name


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_tls12_and_13_with_p256_work(dev_certs: Path, version: ssl.TLSVersion) -> None:
    def only(c: ssl.SSLContext) -> None:
        c.minimum_version = c.maximum_version = version
        c.set_ecdh_curve("prime256v1")

    assert await _handshake(dev_certs, only) == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                                 ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
