"""Devices and their public keys for end-to-end encryption (docs/e2ee.md).

One device per login session (its id is the session id). The client makes its keys and
uploads only public halves: identity keys (Curve25519 for Olm, Ed25519 for signing) signed by
the Ed25519 key itself, and a supply of one-time Curve25519 keys. Another user's client claims
one one-time key per new Olm session: the claim deletes the row in the same transaction that
reads it (``SELECT ... FOR UPDATE SKIP LOCKED`` where the database has it), so concurrent claims
never get the same key. Revoking a session deletes its device and, by cascade, its keys.

The server checks signatures on upload so garbage is refused early, but clients check them
again: a server that substitutes keys is what end-to-end encryption defends against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chase.clock import Clock
from chase.devicekeys import (
    DEVICE_ID_PATTERN,
    KEY_ID_PATTERN,
    KEY_PATTERN,
    SIGNATURE_PATTERN,
    backup_payload,
    identity_payload,
    unb64,
)
from chase.logging import get_logger
from chase.store.tables import devices, key_backups, one_time_keys, sessions
from services.auth.errors import DeviceKeysMissing, InvalidSignature, KeysConflict, NoOneTimeKey
from services.auth.models import SessionInfo
from services.auth.repository import from_db, to_db

log = get_logger("chase.auth.devices")

#: One-time keys one upload may carry, and a device may hold unclaimed.
MAX_UPLOAD_KEYS = 100
MAX_STORED_KEYS = 200
#: Claim attempts when another claim takes the chosen key first (only where the database
#: cannot skip locked rows); each attempt is its own short transaction.
CLAIM_ATTEMPTS = 10

PublicKey = Annotated[str, Field(pattern=KEY_PATTERN, description="unpadded base64 of 32 bytes")]
Signature = Annotated[str, Field(pattern=SIGNATURE_PATTERN, description="unpadded base64 Ed25519 signature")]
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
KeyId = Annotated[str, Field(pattern=KEY_ID_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OneTimeKey(_In):
    key_id: KeyId
    public_key: PublicKey


class DeviceKeysUpload(_In):
    """This device's identity keys; ``signature`` is Ed25519 over ``chase.devicekeys.identity_payload``."""

    curve25519: PublicKey
    ed25519: PublicKey
    signature: Signature
    one_time_keys: list[OneTimeKey] = Field(default_factory=list, max_length=MAX_UPLOAD_KEYS)


class OneTimeKeysUpload(_In):
    one_time_keys: list[OneTimeKey] = Field(min_length=1, max_length=MAX_UPLOAD_KEYS)


class OneTimeKeyCount(_Out):
    #: Unclaimed one-time keys this device still has on the server.
    one_time_keys: int


class DevicePublic(_Out):
    device_id: str
    user_id: int
    curve25519: str
    ed25519: str
    signature: str
    created_at: datetime


class DeviceList(_Out):
    devices: list[DevicePublic]


class ClaimedKey(_Out):
    device_id: str
    key_id: str
    public_key: str


class KeyBackupUpload(_In):
    """The public half of the recovery key; ``signature`` by this device's Ed25519 key over
    ``chase.devicekeys.backup_payload``."""

    public_key: PublicKey
    signature: Signature


class KeyBackupPublic(_Out):
    user_id: int
    public_key: str
    signer_ed25519: str
    signature: str
    updated_at: datetime


def _verify(ed25519: str, signature: str, payload: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(unb64(ed25519)).verify(unb64(signature), payload)
    except (ValueError, _BadSignature):
        raise InvalidSignature() from None


# --- storage (each ``_txn`` runs in the caller's transaction) ---------------------------------


@dataclass(frozen=True)
class DeviceRow:
    session_id: str
    user_id: int
    curve25519: str
    ed25519: str
    signature: str
    created_at: datetime


async def get_device_txn(conn: AsyncConnection, session_id: str) -> DeviceRow | None:
    row = (await conn.execute(sa.select(devices).where(devices.c.session_id == session_id))).first()
    return None if row is None else DeviceRow(row.session_id, row.user_id, row.curve25519, row.ed25519,
                                              row.signature, from_db(row.created_at))


async def list_devices_txn(conn: AsyncConnection, user_id: int, now: datetime) -> list[DeviceRow]:
    """The user's devices whose session is live (an expired one is gone before the purge)."""
    rows = await conn.execute(
        sa.select(devices)
        .join(sessions, sessions.c.id == devices.c.session_id)
        .where(devices.c.user_id == user_id, sessions.c.revoked_at.is_(None), sessions.c.expires_at > to_db(now))
        .order_by(devices.c.created_at, devices.c.session_id)
    )
    return [DeviceRow(r.session_id, r.user_id, r.curve25519, r.ed25519, r.signature, from_db(r.created_at))
            for r in rows]


async def insert_device_txn(conn: AsyncConnection, device: DeviceRow) -> None:
    await conn.execute(sa.insert(devices).values(
        session_id=device.session_id, user_id=device.user_id, curve25519=device.curve25519,
        ed25519=device.ed25519, signature=device.signature, created_at=to_db(device.created_at)))


async def count_keys_txn(conn: AsyncConnection, session_id: str) -> int:
    return int((await conn.execute(
        sa.select(sa.func.count()).select_from(one_time_keys).where(one_time_keys.c.session_id == session_id)
    )).scalar_one())


async def add_keys_txn(conn: AsyncConnection, session_id: str, keys: list[OneTimeKey]) -> None:
    """Insert keys not yet known by id (a repeated upload is a no-op), up to the cap."""
    if not keys:
        return
    known = {r.key_id for r in await conn.execute(
        sa.select(one_time_keys.c.key_id).where(one_time_keys.c.session_id == session_id,
                                                one_time_keys.c.key_id.in_([k.key_id for k in keys])))}
    fresh = {k.key_id: k for k in keys if k.key_id not in known}
    room = MAX_STORED_KEYS - await count_keys_txn(conn, session_id)
    rows = [{"session_id": session_id, "key_id": k.key_id, "public_key": k.public_key}
            for k in list(fresh.values())[: max(room, 0)]]
    if rows:
        await conn.execute(sa.insert(one_time_keys), rows)


async def claim_key_txn(conn: AsyncConnection, session_id: str) -> ClaimedKey | None:
    """Take one key of the device: read it locked (skipping keys other claims hold), delete it.

    None when there is none to take, or when a concurrent claim deleted the chosen one first
    (possible only where ``SKIP LOCKED`` is not supported, i.e. SQLite, whose single writer
    makes it rare): the caller tries again in a new transaction."""
    query = (sa.select(one_time_keys.c.id, one_time_keys.c.key_id, one_time_keys.c.public_key)
             .where(one_time_keys.c.session_id == session_id).order_by(one_time_keys.c.id).limit(1))
    if conn.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    deleted = await conn.execute(sa.delete(one_time_keys).where(one_time_keys.c.id == row.id))
    if deleted.rowcount != 1:
        return None
    return ClaimedKey(device_id=session_id, key_id=row.key_id, public_key=row.public_key)


async def purge_devices_txn(conn: AsyncConnection, now: datetime) -> None:
    """Delete the devices of sessions that expired or were revoked (before those sessions go)."""
    dead = sa.select(sessions.c.id).where(
        sa.or_(sessions.c.expires_at <= to_db(now), sessions.c.revoked_at.is_not(None)))
    ids = [row.id for row in await conn.execute(dead)]
    await delete_devices_txn(conn, ids)


async def delete_devices_txn(conn: AsyncConnection, session_ids: list[str]) -> None:
    """A session that ends takes its device with it (its one-time keys go by cascade; the
    delete is explicit too, for a database whose foreign keys are off)."""
    if session_ids:
        await conn.execute(sa.delete(one_time_keys).where(one_time_keys.c.session_id.in_(session_ids)))
        await conn.execute(sa.delete(devices).where(devices.c.session_id.in_(session_ids)))


# --- use cases ------------------------------------------------------------------------------


class DeviceService:
    def __init__(self, *, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self._clock = clock

    async def publish(self, session: SessionInfo, upload: DeviceKeysUpload) -> OneTimeKeyCount:
        """Publish this session's device: idempotent with the same keys, 409 with others."""
        _verify(upload.ed25519, upload.signature,
                identity_payload(session.user.id, session.session_id, upload.curve25519, upload.ed25519))
        async with self.engine.begin() as conn:
            existing = await get_device_txn(conn, session.session_id)
            if existing is None:
                try:
                    await insert_device_txn(conn, DeviceRow(session.session_id, session.user.id, upload.curve25519,
                                                            upload.ed25519, upload.signature, self._clock.now()))
                except IntegrityError:
                    raise KeysConflict() from None
                log.info("device published", user_id=session.user.id, session_id=session.session_id)
            elif (existing.curve25519, existing.ed25519) != (upload.curve25519, upload.ed25519):
                raise KeysConflict()
            await add_keys_txn(conn, session.session_id, upload.one_time_keys)
            return OneTimeKeyCount(one_time_keys=await count_keys_txn(conn, session.session_id))

    async def add_one_time_keys(self, session: SessionInfo, upload: OneTimeKeysUpload) -> OneTimeKeyCount:
        async with self.engine.begin() as conn:
            if await get_device_txn(conn, session.session_id) is None:
                raise DeviceKeysMissing()
            await add_keys_txn(conn, session.session_id, upload.one_time_keys)
            return OneTimeKeyCount(one_time_keys=await count_keys_txn(conn, session.session_id))

    async def key_count(self, session: SessionInfo) -> OneTimeKeyCount:
        async with self.engine.connect() as conn:
            return OneTimeKeyCount(one_time_keys=await count_keys_txn(conn, session.session_id))

    async def list_devices(self, user_id: int) -> DeviceList:
        async with self.engine.connect() as conn:
            rows = await list_devices_txn(conn, user_id, self._clock.now())
        return DeviceList(devices=[
            DevicePublic(device_id=r.session_id, user_id=r.user_id, curve25519=r.curve25519, ed25519=r.ed25519,
                         signature=r.signature, created_at=r.created_at) for r in rows])

    async def claim(self, device_id: str) -> ClaimedKey:
        for _ in range(CLAIM_ATTEMPTS):
            async with self.engine.begin() as conn:
                claimed = await claim_key_txn(conn, device_id)
                if claimed is None and await count_keys_txn(conn, device_id) == 0:
                    raise NoOneTimeKey()
            if claimed is not None:
                return claimed
        raise NoOneTimeKey()

    async def set_backup(self, session: SessionInfo, upload: KeyBackupUpload) -> KeyBackupPublic:
        async with self.engine.begin() as conn:
            device = await get_device_txn(conn, session.session_id)
            if device is None:
                raise DeviceKeysMissing()
            _verify(device.ed25519, upload.signature, backup_payload(session.user.id, upload.public_key))
            now = self._clock.now()
            values = {"public_key": upload.public_key, "signer_ed25519": device.ed25519,
                      "signature": upload.signature, "updated_at": to_db(now)}
            updated = await conn.execute(
                sa.update(key_backups).where(key_backups.c.user_id == session.user.id).values(**values))
            if updated.rowcount == 0:
                try:
                    async with conn.begin_nested():
                        await conn.execute(sa.insert(key_backups).values(user_id=session.user.id, **values))
                except IntegrityError:
                    # Another device of the same user set it at the same moment: this one wins.
                    await conn.execute(
                        sa.update(key_backups).where(key_backups.c.user_id == session.user.id).values(**values))
        return KeyBackupPublic(user_id=session.user.id, updated_at=from_db(to_db(now)), **{
            k: v for k, v in values.items() if k != "updated_at"})

    async def get_backup(self, user_id: int) -> KeyBackupPublic | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(key_backups).where(key_backups.c.user_id == user_id))).first()
        if row is None:
            return None
        return KeyBackupPublic(user_id=row.user_id, public_key=row.public_key, signer_ed25519=row.signer_ed25519,
                               signature=row.signature, updated_at=from_db(row.updated_at))
