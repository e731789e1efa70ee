"""The writer's lease: exactly one persistence worker commits at a time, enforced by the database.

RabbitMQ's single-active-consumer picks which worker gets deliveries, but it cannot stop a
worker that was deposed (paused past its broker heartbeat, then resumed) from committing the
batch it was holding. So every batch's transaction starts by renewing the ``writer_leases`` row
*only while the epoch in it is still this writer's*. The conditional UPDATE takes the row's
write lock (on MariaDB the same lock as ``SELECT ... FOR UPDATE``; on SQLite the database's
write lock), so writers commit one after another, and a writer whose epoch was replaced gets
:class:`FencedOut` and must step down instead of committing.

A writer without an epoch takes the lease when it has expired (its last holder stopped
renewing it) or is already its own; taking it raises the epoch. While another writer's lease
is still running, :class:`LeaseHeld` says when to try again: the holder is alive and working,
or its lease runs out within ``ttl`` seconds.

Functions ending in ``_txn`` run inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chase.store.tables import writer_leases


class FencedOut(Exception):
    """Another writer took the lease over: stop writing, give the batch back, step down."""


class LeaseHeld(Exception):
    """Another writer's lease has not expired yet; try again later (it is transient)."""

    def __init__(self, holder: str, expires_at: datetime) -> None:
        super().__init__(f"the writer lease is held by {holder} until {expires_at.isoformat()}")
        self.holder = holder
        self.expires_at = expires_at


async def hold_lease_txn(
    conn: AsyncConnection, name: str, holder: str, epoch: int | None, now: datetime, ttl: float
) -> int:
    """Renew (``epoch`` given) or take (``epoch`` None) the lease ``name``; return the epoch held.

    Raises :class:`FencedOut` when ``epoch`` is no longer current, :class:`LeaseHeld` when
    another holder's lease runs. ``now`` is naive UTC. The result is only true once the
    caller's transaction commits; if it rolls back, nothing was taken.
    """
    expires = now + timedelta(seconds=ttl)
    row = writer_leases.c
    if epoch is not None:
        renewed = await conn.execute(
            sa.update(writer_leases)
            .where(row.name == name, row.epoch == epoch, row.holder == holder)
            .values(expires_at=expires)
        )
        if renewed.rowcount != 1:
            raise FencedOut(f"the {name} lease was taken over (our epoch was {epoch})")
        return epoch
    taken = await conn.execute(
        sa.update(writer_leases)
        .where(row.name == name, sa.or_(row.expires_at <= now, row.holder == holder))
        .values(epoch=row.epoch + 1, holder=holder, expires_at=expires)
    )
    if taken.rowcount != 1:
        current = (
            await conn.execute(sa.select(row.holder, row.expires_at).where(row.name == name))
        ).first()
        if current is not None:
            raise LeaseHeld(current.holder, current.expires_at)
        try:
            # A schema made without the migration's row (or a row deleted by hand).
            async with conn.begin_nested():
                await conn.execute(sa.insert(writer_leases).values(name=name, epoch=1, holder=holder, expires_at=expires))
        except IntegrityError:
            raise LeaseHeld("another writer", expires) from None
        return 1
    return (await conn.execute(sa.select(row.epoch).where(row.name == name))).scalar_one()


async def current_epoch(conn: AsyncConnection, name: str) -> tuple[int, str] | None:
    """The lease's epoch and holder now (for tests and operators)."""
    found = (await conn.execute(sa.select(writer_leases.c.epoch, writer_leases.c.holder).where(
        writer_leases.c.name == name))).first()
    return None if found is None else (found.epoch, found.holder)
