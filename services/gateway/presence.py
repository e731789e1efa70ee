"""Who is online, on this gateway and on every other one; sans-I/O, with an injected clock.

A user is online when at least one gateway holds a connection of theirs. Each gateway:

- publishes :class:`PresenceChanged` on ``routing.presence(<its id>)`` on a user's first
  connection and last disconnection there;
- publishes a :class:`GatewayHeartbeat` every few seconds listing its users, with a ttl;
- listens to every other gateway's events and forgets a gateway whose heartbeat is older than
  its ttl (it died without saying goodbye): its users go offline unless online elsewhere.

Every method returns the :class:`PresenceFrame` s the server must send to all its local
clients: exactly the users whose global state changed. A gateway that just started learns the
others' users from their next heartbeat, so its view may lag one heartbeat interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chase.clock import Clock
from chase.schemas import Event, GatewayHeartbeat, PresenceChanged, PresenceFrame, UserRef


@dataclass(frozen=True)
class PresenceUpdate:
    #: Publish on ``routing.presence(gateway_id)``.
    publish: PresenceChanged | None
    #: Send to every local connection.
    frames: list[PresenceFrame]


@dataclass
class _Remote:
    users: dict[int, UserRef] = field(default_factory=dict)
    last_seen: float = 0.0
    ttl: float = 0.0


class PresenceTracker:
    def __init__(self, gateway_id: str, clock: Clock, ttl_seconds: float) -> None:
        self.gateway_id = gateway_id
        self._clock = clock
        self._ttl = ttl_seconds
        self._local: dict[int, tuple[UserRef, int]] = {}
        self._remote: dict[str, _Remote] = {}

    # --- this gateway's connections -----------------------------------------------------------

    def connected(self, user: UserRef) -> PresenceUpdate:
        """Count one more local connection of ``user``."""
        before = self._online()
        _, count = self._local.get(user.id, (user, 0))
        self._local[user.id] = (user, count + 1)
        publish = None
        if count == 0:
            publish = PresenceChanged(gateway_id=self.gateway_id, user=user, online=True)
        return PresenceUpdate(publish, self._diff(before))

    def disconnected(self, user: UserRef) -> PresenceUpdate:
        """Count one local connection of ``user`` fewer."""
        if user.id not in self._local:
            return PresenceUpdate(None, [])
        before = self._online()
        ref, count = self._local[user.id]
        publish = None
        if count <= 1:
            del self._local[user.id]
            publish = PresenceChanged(gateway_id=self.gateway_id, user=ref, online=False)
        else:
            self._local[user.id] = (ref, count - 1)
        return PresenceUpdate(publish, self._diff(before))

    def local_users(self) -> list[UserRef]:
        return [ref for ref, _ in self._local.values()]

    def heartbeat(self) -> GatewayHeartbeat:
        """This gateway's heartbeat; publish it on ``routing.presence(gateway_id)``."""
        return GatewayHeartbeat(
            gateway_id=self.gateway_id,
            users=sorted(self.local_users(), key=lambda u: u.id),
            sent_at=self._clock.now(),
            ttl_seconds=self._ttl,
        )

    # --- other gateways -----------------------------------------------------------------------

    def on_event(self, event: Event) -> list[PresenceFrame]:
        """Another gateway's presence event (our own come back too and are ignored)."""
        if not isinstance(event, PresenceChanged | GatewayHeartbeat) or event.gateway_id == self.gateway_id:
            return []
        before = self._online()
        remote = self._remote.setdefault(event.gateway_id, _Remote(ttl=self._ttl))
        remote.last_seen = self._clock.monotonic()
        if isinstance(event, GatewayHeartbeat):
            remote.users = {u.id: u for u in event.users}
            remote.ttl = event.ttl_seconds
        elif event.online:
            remote.users[event.user.id] = event.user
        else:
            remote.users.pop(event.user.id, None)
        if not remote.users:
            # Nothing to expire later; it comes back with its next event.
            del self._remote[event.gateway_id]
        return self._diff(before)

    def expire(self) -> list[PresenceFrame]:
        """Forget gateways silent for longer than their ttl; call it every heartbeat."""
        now = self._clock.monotonic()
        before = self._online()
        for gateway_id in [g for g, r in self._remote.items() if now - r.last_seen > r.ttl]:
            del self._remote[gateway_id]
        return self._diff(before)

    # --- the global view ----------------------------------------------------------------------

    def online_user_ids(self) -> set[int]:
        return set(self._online())

    def _online(self) -> dict[int, UserRef]:
        online = {uid: ref for uid, (ref, _) in self._local.items()}
        for remote in self._remote.values():
            for uid, ref in remote.users.items():
                online.setdefault(uid, ref)
        return online

    def _diff(self, before: dict[int, UserRef]) -> list[PresenceFrame]:
        after = self._online()
        frames = [PresenceFrame(user=ref, online=True) for uid, ref in after.items() if uid not in before]
        frames += [PresenceFrame(user=ref, online=False) for uid, ref in before.items() if uid not in after]
        return frames
