"""TLS for every connection: the dev certificate authority and the SSL contexts.

``chase certs`` makes a local CA and a server certificate for localhost / 127.0.0.1 (and any
extra names given). Servers load the certificate; clients trust the CA. Verification is never
turned off anywhere in ChaSe: a client that does not trust the server's certificate fails.

Servers follow Mozilla's *intermediate* profile: TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE
key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), no CBC, no RSA key exchange, no
finite-field DHE; ECDHE on P-256 only. (Mozilla allows X25519, P-256 and P-384; Python's ssl
module can set a single group, and P-256 is the one every client has.) The dev server
certificate lives 90 days and is renewed from the same CA by ``chase certs`` / ``chase serve``
when fewer than 14 days are left, so clients keep trusting the same ``ca.pem``; the CA lives
two years.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
SERVER_CERT_DAYS = 90
CA_CERT_DAYS = 730
#: A server certificate with less than this left is renewed.
RENEW_BEFORE = timedelta(days=14)
#: TLS 1.2 suites of Mozilla's intermediate profile without DHE: ECDHE and AEAD only.
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
ECDH_GROUP = "prime256v1"


def ensure_dev_certs(directory: Path, names: tuple[str, ...] = DEFAULT_NAMES, *, force: bool = False) -> bool:
    """Create the dev CA and server certificate in ``directory`` unless they exist.

    A server certificate about to expire (or gone) is re-issued from the existing CA; a missing
    or expiring CA (or ``force``) makes everything anew. Returns True when files were written.
    Private keys are written with mode 0600, whatever file was there before.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca = None if force else _load_ca(directory, now)
    server_ok = ca is not None and _valid_until(directory / SERVER_FILE, now + RENEW_BEFORE)
    if server_ok and (directory / SERVER_KEY_FILE).exists():
        return False
    if ca is None:
        ca = _new_ca(now)
        _write(directory / CA_FILE, ca[1].public_bytes(serialization.Encoding.PEM))
        _write(directory / CA_KEY_FILE, _key_pem(ca[0]), private=True)
    _issue_server(directory, *ca, names, now)
    return True


def issue_service_certs(
    ca_dir: Path,
    out_dir: Path,
    services: tuple[str, ...],
    names: tuple[str, ...] = DEFAULT_NAMES,
    *,
    owner: tuple[int, int] | None = None,
    force: bool = False,
) -> list[str]:
    """Give each service its own folder ``out_dir/<service>`` holding only ``ca.pem``, its
    ``server.pem`` (for the service's name plus ``names``) and ``server-key.pem``.

    The CA's key stays in ``ca_dir`` (made there on first use) and is copied nowhere. Existing
    service certificates signed by this CA and not about to expire are kept unless ``force``;
    ``owner`` (uid, gid) gets every file of the service folders, keys mode 0600, so a service
    running as that user can read its key and nobody else's. Returns the services that got
    new files.
    """
    ca_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca = _load_ca(ca_dir, now)
    if ca is None:
        ca = _new_ca(now)
        _write(ca_dir / CA_FILE, ca[1].public_bytes(serialization.Encoding.PEM))
        _write(ca_dir / CA_KEY_FILE, _key_pem(ca[0]), private=True)
    ca_key, ca_cert = ca
    issued = []
    for service in services:
        folder = out_dir / service
        folder.mkdir(parents=True, exist_ok=True)
        current = folder / SERVER_FILE
        fresh = _valid_until(current, now + RENEW_BEFORE) and _signed_by(current, ca_cert)
        if force or not (folder / SERVER_KEY_FILE).exists() or not fresh:
            _issue_server(folder, ca_key, ca_cert, (service, *names), now)
            issued.append(service)
        _write(folder / CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
        if owner is not None:
            for path in (folder, folder / CA_FILE, folder / SERVER_FILE, folder / SERVER_KEY_FILE):
                os.chown(path, *owner)
    return issued


def _issue_server(
    directory: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: tuple[str, ...],
    now: datetime,
) -> None:
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SERVER_CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in dict.fromkeys(names)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / SERVER_KEY_FILE, _key_pem(server_key), private=True)
    _write(directory / SERVER_FILE, server_cert.public_bytes(serialization.Encoding.PEM))


def _signed_by(cert_path: Path, ca_cert: x509.Certificate) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return True


def _new_ca(now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ChaSe development CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_cert


def _load_ca(directory: Path, now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    """The existing CA when it is usable for a full server lifetime more, else None."""
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.not_valid_after_utc < now + timedelta(days=SERVER_CERT_DAYS):
        return None
    return key, cert


def _valid_until(path: Path, moment: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc > moment


def require_readable(*paths: Path) -> None:
    """Raise :class:`~chase.config.ConfigError` in one line when a TLS file is missing or this
    process may not read it (e.g. a key owned by another user); call before serving."""
    from chase.config import ConfigError

    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except FileNotFoundError:
            raise ConfigError(f"CHASE_TLS_CERT / CHASE_TLS_KEY: {path} is missing: run `chase certs` first") from None
        except PermissionError:
            raise ConfigError(
                f"CHASE_TLS_CERT / CHASE_TLS_KEY: {path} is not readable by this user (uid {os.getuid()}): "
                "give the service's user read access to its certificate and key"
            ) from None


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context of Mozilla's intermediate profile (module docstring); raises
    FileNotFoundError naming a missing file."""
    for path in (cert, key):
        if not path.exists():
            raise FileNotFoundError(f"TLS file {path} is missing: run `chase certs` first")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(SERVER_CIPHERS)
    context.set_ecdh_curve(ECDH_GROUP)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(cert, key)
    return context


def client_context(ca: Path | None) -> ssl.SSLContext:
    """A verifying client context that trusts ``ca`` (or the system store when None)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        if not ca.exists():
            raise FileNotFoundError(f"CA file {ca} is missing: run `chase certs` or set CHASE_TLS_CA")
        context.load_verify_locations(cafile=str(ca))
    return context


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write a new file and move it over ``path``: its mode is ours (0600 for a key) whatever
    the old file's was, and a reader never sees half a file."""
    mode = 0o600 if private else 0o644
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; a key must be exactly 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
