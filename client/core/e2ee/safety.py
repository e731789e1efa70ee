"""Safety numbers: what two people compare (read aloud, or side by side) to know that the keys
their clients use are the keys of each other's devices, not keys a server slipped in.

A safety number covers both people's devices: the user id and the Ed25519 identity keys of
every device, sorted, hashed with SHA-512 (a fingerprint of public keys, as Signal's are), and
shown as 12 groups of 5 digits. Both sides compute the same number; a new device, a removed
one, or a substituted key changes it.
"""

from __future__ import annotations

import hashlib

from chase.devicekeys import canonical


def fingerprint(devices_by_user: dict[int, list[tuple[str, str]]]) -> str:
    """The safety number of these users' devices: ``{user_id: [(device_id, ed25519), ...]}``."""
    document = {str(user): sorted([device, key] for device, key in devices)
                for user, devices in sorted(devices_by_user.items())}
    digest = hashlib.sha512(b"chase.safety.v1" + canonical(document)).digest()
    groups = [int.from_bytes(digest[i:i + 5], "big") % 100_000 for i in range(0, 60, 5)]
    return " ".join(f"{g:05d}" for g in groups)
