"""The auth service's device endpoints (docs/protocol.md 2.1, docs/e2ee.md), as the client
uses them. Answers are read tolerantly; nothing in them is trusted before the caller checks
the signatures (client.core.e2ee.crypto)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from client.core.api import AuthApi, AuthSession
from client.core.errors import ClientError, ProtocolFailure


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeviceKeys(_Reply):
    device_id: str
    user_id: int
    curve25519: str
    ed25519: str
    signature: str
    created_at: datetime


class _Devices(_Reply):
    devices: list[DeviceKeys]


class ClaimedKey(_Reply):
    device_id: str
    key_id: str
    public_key: str


class BackupKey(_Reply):
    user_id: int
    public_key: str
    signer_ed25519: str
    signature: str


class _Count(_Reply):
    one_time_keys: int


_M = TypeVar("_M", bound=BaseModel)


def _parse(model: type[_M], content: bytes) -> _M:
    try:
        return model.model_validate_json(content)
    except ValidationError:
        raise ProtocolFailure("the server's answer about encryption keys was not understood") from None


class KeysApi:
    def __init__(self, api: AuthApi, session: AuthSession) -> None:
        self._api = api
        self._session = session

    async def publish(self, curve25519: str, ed25519: str, signature: str, one_time_keys: dict[str, str]) -> int:
        body = {"curve25519": curve25519, "ed25519": ed25519, "signature": signature,
                "one_time_keys": [{"key_id": k, "public_key": v} for k, v in one_time_keys.items()]}
        response = await self._api.call(self._session, "PUT", "/devices/current", json=body)
        if response.status_code == 404:
            raise ClientError("this server does not support end-to-end encryption")
        return _parse(_Count, response.content).one_time_keys

    async def add_one_time_keys(self, one_time_keys: dict[str, str]) -> int:
        body = {"one_time_keys": [{"key_id": k, "public_key": v} for k, v in one_time_keys.items()]}
        response = await self._api.call(self._session, "POST", "/devices/current/one-time-keys", json=body)
        return _parse(_Count, response.content).one_time_keys

    async def one_time_key_count(self) -> int:
        response = await self._api.call(self._session, "GET", "/devices/current/one-time-keys")
        return _parse(_Count, response.content).one_time_keys

    async def devices(self, user_id: int) -> list[DeviceKeys]:
        response = await self._api.call(self._session, "GET", f"/users/{user_id}/devices")
        return _parse(_Devices, response.content).devices

    async def claim(self, device_id: str) -> ClaimedKey | None:
        """One one-time key of the device, or None when it has none left."""
        response = await self._api.call(self._session, "POST", f"/devices/{device_id}/one-time-keys/claim")
        if response.status_code == 404:
            return None
        return _parse(ClaimedKey, response.content)

    async def set_backup(self, public_key: str, signature: str) -> None:
        await self._api.call(self._session, "PUT", "/users/me/key-backup",
                             json={"public_key": public_key, "signature": signature})

    async def backup(self, user_id: int) -> BackupKey | None:
        response = await self._api.call(self._session, "GET", f"/users/{user_id}/key-backup")
        if response.status_code == 404:
            return None
        return _parse(BackupKey, response.content)
