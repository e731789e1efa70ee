"""Who is online, on this gateway and on every other one; sans-I/O, with an injected clock.

A user is online when at least one gateway holds a connection of theirs. Each gateway:

- publishes :class:`PresenceChanged` on ``routing.presence(<its id>)`` on a user's first
  connection and last disconnection there;
- publishes a :class:`GatewayHeartbeat` every few seconds listing its users, with a ttl;
- listens to every other gateway's events and forgets a gateway whose heartbeat is older than
  its ttl (it died without saying goodbye): its users go offline unless online elsewhere.

Every method returns the :class:`PresenceChange` s the server must tell all its local clients:
exactly the users whose global state changed (the fan-out gathers them into one ``presence``
frame per short window). A gateway that just started learns the others' users from their next
heartbeat, so its view may lag one heartbeat interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chase.clock import Clock
from chase.schemas import Event, GatewayHeartbeat, PresenceChanged, UserRef


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """``user`` came online (``online``) or went offline, as far as every gateway is concerned."""

    user: UserRef
    online: bool


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    #: Publish on ``routing.presence(gateway_id)``.
    publish: PresenceChanged | None
    #: Tell every local connection.
    changes: list[PresenceChange]


@dataclass(slots=True)
class _Remote:
    users: dict[int, UserRef] = field(default_factory=dict)
    last_seen: float = 0.0
    ttl: float = 0.0


class PresenceTracker:
    """Every change costs O(1) (a heartbeat: O(users it lists)): a user is online while at
    least one *source* (this gateway, or another gateway) holds them; the tracker counts
    sources per user and reports only the transitions between none and some."""

    def __init__(self, gateway_id: str, clock: Clock, ttl_seconds: float) -> None:
        self.gateway_id = gateway_id
        self._clock = clock
        self._ttl = ttl_seconds
        self._local: dict[int, tuple[UserRef, int]] = {}
        self._remote: dict[str, _Remote] = {}
        #: user id -> (ref, number of sources holding them); present means online.
        self._online: dict[int, tuple[UserRef, int]] = {}

    # --- this gateway's connections -----------------------------------------------------------

    def connected(self, user: UserRef) -> PresenceUpdate:
        """Count one more local connection of ``user``."""
        _, count = self._local.get(user.id, (user, 0))
        self._local[user.id] = (user, count + 1)
        if count:
            return PresenceUpdate(None, [])
        frames = self._gain([], user)
        return PresenceUpdate(PresenceChanged(gateway_id=self.gateway_id, user=user, online=True), frames)

    def disconnected(self, user: UserRef) -> PresenceUpdate:
        """Count one local connection of ``user`` fewer."""
        if user.id not in self._local:
            return PresenceUpdate(None, [])
        ref, count = self._local[user.id]
        if count > 1:
            self._local[user.id] = (ref, count - 1)
            return PresenceUpdate(None, [])
        del self._local[user.id]
        frames = self._lose([], user.id)
        return PresenceUpdate(PresenceChanged(gateway_id=self.gateway_id, user=ref, online=False), frames)

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

    def on_event(self, event: Event) -> list[PresenceChange]:
        """Another gateway's presence event (our own come back too and are ignored)."""
        if not isinstance(event, PresenceChanged | GatewayHeartbeat) or event.gateway_id == self.gateway_id:
            return []
        frames: list[PresenceChange] = []
        remote = self._remote.setdefault(event.gateway_id, _Remote(ttl=self._ttl))
        remote.last_seen = self._clock.monotonic()
        if isinstance(event, GatewayHeartbeat):
            listed = {u.id: u for u in event.users}
            for uid, ref in listed.items():
                if uid not in remote.users:
                    self._gain(frames, ref)
            for uid in [uid for uid in remote.users if uid not in listed]:
                self._lose(frames, uid)
            remote.users = listed
            remote.ttl = event.ttl_seconds
        elif event.online:
            if event.user.id not in remote.users:
                remote.users[event.user.id] = event.user
                self._gain(frames, event.user)
        elif remote.users.pop(event.user.id, None) is not None:
            self._lose(frames, event.user.id)
        if not remote.users:
            # Nothing to expire later; it comes back with its next event.
            del self._remote[event.gateway_id]
        return frames

    def expire(self) -> list[PresenceChange]:
        """Forget gateways silent for longer than their ttl; call it every heartbeat."""
        now = self._clock.monotonic()
        frames: list[PresenceChange] = []
        for gateway_id in [g for g, r in self._remote.items() if now - r.last_seen > r.ttl]:
            for uid in self._remote.pop(gateway_id).users:
                self._lose(frames, uid)
        return frames

    # --- the global view ----------------------------------------------------------------------

    def online_user_ids(self) -> set[int]:
        return set(self._online)

    def _gain(self, frames: list[PresenceChange], ref: UserRef) -> list[PresenceChange]:
        """One more source holds ``ref``; a frame when that makes them online."""
        known, sources = self._online.get(ref.id, (ref, 0))
        self._online[ref.id] = (known, sources + 1)
        if not sources:
            frames.append(PresenceChange(user=ref, online=True))
        return frames

    def _lose(self, frames: list[PresenceChange], user_id: int) -> list[PresenceChange]:
        """One source fewer holds ``user_id``; a frame when none is left."""
        ref, sources = self._online[user_id]
        if sources > 1:
            self._online[user_id] = (ref, sources - 1)
        else:
            del self._online[user_id]
            frames.append(PresenceChange(user=ref, online=False))
        return frames
