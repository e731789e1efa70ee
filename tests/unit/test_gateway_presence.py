"""Presence across gateways, with a fake clock: connects, disconnects, heartbeats, expiry."""

from __future__ import annotations

from chase.clock import FakeClock
from chase.schemas import GatewayHeartbeat, PresenceChanged, UserRef
from services.gateway.presence import PresenceChange, PresenceTracker

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")


def tracker(clock: FakeClock, gateway_id: str = "gw-a") -> PresenceTracker:
    return PresenceTracker(gateway_id, clock, ttl_seconds=15)


def test_first_connect_and_last_disconnect_are_published() -> None:
    t = tracker(FakeClock())
    first = t.connected(ALICE)
    assert first.publish == PresenceChanged(gateway_id="gw-a", user=ALICE, online=True)
    assert first.changes == [PresenceChange(user=ALICE, online=True)]
    second = t.connected(ALICE)
    assert second.publish is None and second.changes == []
    assert t.disconnected(ALICE).publish is None
    last = t.disconnected(ALICE)
    assert last.publish == PresenceChanged(gateway_id="gw-a", user=ALICE, online=False)
    assert last.changes == [PresenceChange(user=ALICE, online=False)]
    assert t.online_user_ids() == set()


def test_own_events_are_ignored() -> None:
    t = tracker(FakeClock())
    assert t.on_event(PresenceChanged(gateway_id="gw-a", user=BOB, online=True)) == []
    assert t.online_user_ids() == set()


def test_remote_user_goes_offline_when_its_gateway_stops_beating() -> None:
    clock = FakeClock()
    t = tracker(clock)
    beat = GatewayHeartbeat(gateway_id="gw-b", users=[BOB], sent_at=clock.now(), ttl_seconds=10)
    assert t.on_event(beat) == [PresenceChange(user=BOB, online=True)]
    clock.advance(9)
    assert t.expire() == []
    assert t.on_event(beat) == []  # a fresh heartbeat restarts the ttl
    clock.advance(9)
    assert t.expire() == []
    assert t.online_user_ids() == {2}
    clock.advance(2)
    assert t.expire() == [PresenceChange(user=BOB, online=False)]
    assert t.online_user_ids() == set()


def test_user_online_elsewhere_stays_online() -> None:
    clock = FakeClock()
    t = tracker(clock)
    t.connected(BOB)
    t.on_event(PresenceChanged(gateway_id="gw-b", user=BOB, online=True))
    clock.advance(60)
    assert t.expire() == []  # gw-b is gone, but bob is still here
    assert t.disconnected(BOB).changes == [PresenceChange(user=BOB, online=False)]


def test_remote_disconnect_and_heartbeat_lists() -> None:
    clock = FakeClock()
    t = tracker(clock)
    t.on_event(PresenceChanged(gateway_id="gw-b", user=ALICE, online=True))
    t.on_event(PresenceChanged(gateway_id="gw-c", user=ALICE, online=True))
    assert t.on_event(PresenceChanged(gateway_id="gw-b", user=ALICE, online=False)) == []
    assert t.on_event(PresenceChanged(gateway_id="gw-c", user=ALICE, online=False)) == [
        PresenceChange(user=ALICE, online=False)
    ]
    t.connected(BOB)
    beat = t.heartbeat()
    assert beat.gateway_id == "gw-a" and beat.users == [BOB] and beat.ttl_seconds == 15


def test_counted_presence_agrees_with_recomputing_it_after_every_change() -> None:
    """The tracker counts sources per user instead of recomputing everyone on each change:
    after a long random mix of local connects, remote events, heartbeats and expiry, its view
    and the frames it reported are exactly what recomputing from scratch gives."""
    import random

    rng = random.Random(8)
    clock = FakeClock()
    t = tracker(clock)
    users = [UserRef(id=i, username=f"u{i}") for i in range(1, 9)]
    local: dict[int, int] = {}
    remote: dict[str, set[int]] = {}
    touched: dict[str, float] = {}
    shown: set[int] = set()
    for _ in range(2000):
        op = rng.randrange(6)
        user = rng.choice(users)
        gw = rng.choice(["gw-b", "gw-c"])
        if op == 0:
            frames = t.connected(user).changes
            local[user.id] = local.get(user.id, 0) + 1
        elif op == 1:
            frames = t.disconnected(user).changes
            if local.get(user.id):
                local[user.id] -= 1
        elif op in (2, 3):
            online = op == 2
            frames = t.on_event(PresenceChanged(gateway_id=gw, user=user, online=online))
            held = remote.setdefault(gw, set())
            (held.add if online else held.discard)(user.id)
            touched[gw] = clock.monotonic()
        elif op == 4:
            listed = rng.sample(users, rng.randrange(len(users)))
            frames = t.on_event(GatewayHeartbeat(gateway_id=gw, users=listed, sent_at=clock.now(), ttl_seconds=15))
            remote[gw] = {u.id for u in listed}
            touched[gw] = clock.monotonic()
        else:
            clock.advance(10)
            frames = t.expire()
            remote = {g: held for g, held in remote.items() if clock.monotonic() - touched[g] <= 15}
        expected = {uid for uid, n in local.items() if n} | {uid for held in remote.values() for uid in held}
        assert t.online_user_ids() == expected
        for frame in frames:
            (shown.add if frame.online else shown.discard)(frame.user.id)
        assert shown == expected
