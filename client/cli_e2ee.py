"""``chase cli`` and end-to-end encryption: private messages are encrypted (docs/e2ee.md).

    chase cli verify --user alice bob      # the safety number and bob's device keys
    chase cli backup --user alice          # make a new recovery key (shown once)
    CHASE_RECOVERY_KEY="..." chase cli tail --user alice    # read older encrypted messages

Every ``chase cli`` command is a login of its own, so a device of its own that ends with the
command: its keys live only in memory. Messages sent before it existed are read through the
key backup (``CHASE_RECOVERY_KEY``); without it the command says so for each of them.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, TextIO

from client.core.api import AuthApi, AuthSession
from client.core.errors import InvalidInput
from client.core.session import Directory

if TYPE_CHECKING:  # vodozemac is imported only when a command uses it
    from client.core.e2ee.manager import E2EE

ENV_RECOVERY_KEY = "CHASE_RECOVERY_KEY"
OK, REFUSED = 0, 6


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:  # noqa: ANN401 - argparse's private type
    verify = commands.add_parser("verify", parents=[common],
                                 help="show the safety number of your conversation with USER, and their device keys")
    verify.add_argument("other", metavar="USER", help="the person to compare keys with")
    commands.add_parser("backup", parents=[common], help="make a new recovery key for your encrypted messages")


async def open_device(api: AuthApi, session: AuthSession) -> E2EE:
    """This command's device: keys made now, published, and the backup unlocked when
    ``CHASE_RECOVERY_KEY`` is set."""
    from client.core.e2ee.keys_api import KeysApi  # noqa: PLC0415
    from client.core.e2ee.manager import E2EE  # noqa: PLC0415
    from client.core.e2ee.vault import EphemeralVault  # noqa: PLC0415

    e2ee = E2EE(KeysApi(api, session), session, EphemeralVault())
    await e2ee.setup()
    recovery_key = os.environ.get(ENV_RECOVERY_KEY)
    if recovery_key:
        await e2ee.restore_backup(recovery_key)
    return e2ee


def _fingerprint(key: str) -> str:
    return " ".join(key[i:i + 4] for i in range(0, len(key), 4))


async def run(args: argparse.Namespace, e2ee: E2EE, directory: Directory, out: TextIO) -> int:
    if args.command == "backup":
        recovery_key = await e2ee.setup_backup()
        out.write("Your recovery key (write it down now; it is not shown again, and the server never sees it):\n\n"
                  f"    {recovery_key}\n\n"
                  "With it, a new device reads your earlier encrypted messages. "
                  "A new key replaces the previous one for messages from now on.\n")
        return OK
    other = directory.by_name(args.other)
    if other is None:
        raise InvalidInput(f"there is no user called {args.other!r}")
    number = await e2ee.safety_number(other.id)
    out.write(f"Safety number of your conversation with {other.username}:\n\n    {number}\n\n"
              f"Compare it with the one {other.username} sees (in person or on a call). It covers every "
              "device of you both, this command's own login included, so compare the device keys below "
              "as well:\n")
    for label, user_id in (("your", e2ee.me.id), (f"{other.username}'s", other.id)):
        out.write(f"\n{label} devices:\n")
        for device in await e2ee.devices(user_id):
            mark = "  (this command)" if device.device_id == e2ee.device_id else ""
            out.write(f"  {device.device_id}  {_fingerprint(device.ed25519)}{mark}\n")
    return OK
