"""What a device signs, byte for byte: shared by the auth service (which checks signatures on
upload) and the client (which checks them again on every fetch, trusting nothing the server
says). Canonical JSON: sorted keys, no spaces, UTF-8.

Keys travel as unpadded standard base64 (vodozemac's ``to_base64()``): 43 characters for a
32-byte key, 86 for a 64-byte Ed25519 signature.
"""

from __future__ import annotations

import base64
import binascii
import json

KEY_PATTERN = r"^[A-Za-z0-9+/]{43}$"
SIGNATURE_PATTERN = r"^[A-Za-z0-9+/]{86}$"
#: Session ids are the device ids (one device per login session).
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
KEY_ID_PATTERN = r"^[A-Za-z0-9+/=_-]{1,64}$"


def canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def identity_payload(user_id: int, device_id: str, curve25519: str, ed25519: str) -> bytes:
    """What a device signs with its Ed25519 key to publish its identity keys."""
    return canonical({"purpose": "chase.device.v1", "user_id": user_id, "device_id": device_id,
                      "curve25519": curve25519, "ed25519": ed25519})


def backup_payload(user_id: int, public_key: str) -> bytes:
    """What a device signs to vouch for its user's key-backup public key."""
    return canonical({"purpose": "chase.backup.v1", "user_id": user_id, "public_key": public_key})


def unb64(text: str) -> bytes:
    """Unpadded (or padded) standard base64 to bytes; ``ValueError`` when it is not."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
