"""The end-to-end encryption endpoints: devices, one-time keys, key backup (docs/e2ee.md).

The server only stores and hands out public keys; every private key stays on its device."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from chase.devicekeys import DEVICE_ID_PATTERN
from chase.schemas import MAX_ID
from services.auth.api.deps import CurrentSession, require_json
from services.auth.devices import (
    ClaimedKey,
    DeviceKeysUpload,
    DeviceList,
    DeviceService,
    KeyBackupPublic,
    KeyBackupUpload,
    OneTimeKeyCount,
    OneTimeKeysUpload,
)
from services.auth.errors import ErrorResponse, NotFound

_ERR = {"model": ErrorResponse}
_BAD_INPUT = {400: _ERR, 415: _ERR, 422: _ERR}
_NEEDS_TOKEN = {401: _ERR}

router = APIRouter(prefix="/api/v1", tags=["devices"])


def _devices(request: Request) -> DeviceService:
    return request.app.state.device_service


Devices = Annotated[DeviceService, Depends(_devices)]
UserIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.put(
    "/devices/current",
    response_model=OneTimeKeyCount,
    dependencies=[Depends(require_json)],
    responses={**_BAD_INPUT, **_NEEDS_TOKEN, 409: _ERR},
)
async def publish_device(body: DeviceKeysUpload, session: CurrentSession, devices: Devices) -> OneTimeKeyCount:
    """Publish this session's device: identity keys signed by its Ed25519 key over
    ``{"purpose":"chase.device.v1","user_id","device_id","curve25519","ed25519"}`` (canonical
    JSON), and optionally one-time keys. The same keys again is a no-op; other keys are 409
    ``keys_conflict``; a bad signature is 422 ``invalid_signature``."""
    return await devices.publish(session, body)


@router.post(
    "/devices/current/one-time-keys",
    response_model=OneTimeKeyCount,
    dependencies=[Depends(require_json)],
    responses={**_BAD_INPUT, **_NEEDS_TOKEN, 409: _ERR},
)
async def add_one_time_keys(body: OneTimeKeysUpload, session: CurrentSession, devices: Devices) -> OneTimeKeyCount:
    """Top up this device's one-time keys (at most 100 a request, 200 held); keys whose id is
    already there are ignored. Answers how many are unclaimed."""
    return await devices.add_one_time_keys(session, body)


@router.get("/devices/current/one-time-keys", response_model=OneTimeKeyCount, responses=_NEEDS_TOKEN)
async def count_one_time_keys(session: CurrentSession, devices: Devices) -> OneTimeKeyCount:
    return await devices.key_count(session)


@router.get("/users/{user_id}/devices", response_model=DeviceList, responses={**_NEEDS_TOKEN, 422: _ERR})
async def list_devices(user_id: UserIdPath, _: CurrentSession, devices: Devices) -> DeviceList:
    """A user's devices with their signed identity keys, oldest first (empty for an unknown
    user). Clients check every signature and remember the keys they have seen."""
    return await devices.list_devices(user_id)


@router.post(
    "/devices/{device_id}/one-time-keys/claim",
    response_model=ClaimedKey,
    responses={**_NEEDS_TOKEN, 404: _ERR, 422: _ERR},
)
async def claim_one_time_key(
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)], _: CurrentSession, devices: Devices
) -> ClaimedKey:
    """Take one one-time key of a device to start an Olm session with it. Each key is handed
    out once, even to concurrent claims; 404 ``no_one_time_key`` when none is left."""
    return await devices.claim(device_id)


@router.put(
    "/users/me/key-backup",
    response_model=KeyBackupPublic,
    dependencies=[Depends(require_json)],
    responses={**_BAD_INPUT, **_NEEDS_TOKEN, 409: _ERR},
)
async def set_key_backup(body: KeyBackupUpload, session: CurrentSession, devices: Devices) -> KeyBackupPublic:
    """Set your key backup's public key (the recovery key's public half), signed by this
    device's Ed25519 key over ``{"purpose":"chase.backup.v1","user_id","public_key"}``."""
    return await devices.set_backup(session, body)


@router.get("/users/{user_id}/key-backup", response_model=KeyBackupPublic, responses={**_NEEDS_TOKEN, 404: _ERR})
async def get_key_backup(user_id: UserIdPath, _: CurrentSession, devices: Devices) -> KeyBackupPublic:
    """A user's key-backup public key and who signed it; 404 ``not_found`` when there is none."""
    found = await devices.get_backup(user_id)
    if found is None:
        raise NotFound("That user has no key backup.")
    return found



