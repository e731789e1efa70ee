"""End-to-end encrypted private messages through the whole system (both deployments).

The services, the broker and the database only ever see ciphertext; every device of both
people reads the message; a new device reads history with the recovery key and says plainly
why it cannot without it; substituted keys, replays and used one-time keys are caught and
shown in plain words; the server refuses plaintext on an encrypted message."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from chase.bus import Delivery, QueueSpec
from chase.schemas import encode
from chase.store.tables import devices, messages
from client.core.api import AuthApi, AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.e2ee import manager
from client.core.e2ee.manager import E2EE, KeysChanged, Security, VerificationChanged
from client.core.e2ee.setup import open_e2ee
from client.core.endpoints import Endpoints
from client.core.session import chat_client, open_api
from tests.helpers import wait_until
from tests.integration.system import PASSWORD, System

pytestmark = pytest.mark.timeout(120)


@dataclass
class Device:
    session: AuthSession
    api: AuthApi
    e2ee: E2EE
    chat: ChatClient | None = None

    def texts(self, with_user: int) -> list[str]:
        assert self.chat is not None
        return [m.body for m in self.chat.store.messages(with_user)]


def endpoints(system: System) -> Endpoints:
    return Endpoints.resolve(system.auth_url, system.gateway_url, system.ca_path)


async def device(system: System, name: str, tmp: Path, *, register: bool = False, connect: bool = True,
                 recovery_key: str | None = None) -> Device:
    api = open_api(endpoints(system))
    if register:
        await api.register(name, PASSWORD)
    session = await api.login(name, PASSWORD)
    folder = tmp / f"{name}-{session.session_id}"
    e2ee = await open_e2ee(api, session, system.auth_url, passphrase=f"vault of {name}", data_dir=folder)
    if recovery_key is not None:
        await e2ee.restore_backup(recovery_key)
    found = Device(session, api, e2ee)
    if connect:
        found.chat = chat_client(endpoints(system), session, policy=BackoffPolicy(base=0.05, cap=0.3), e2ee=e2ee)
        await found.chat.start()
    return found


async def close(*found: Device) -> None:
    for one in found:
        if one.chat is not None:
            await one.chat.close()
        await one.api.aclose()


async def test_only_ciphertext_leaves_the_devices(system: System, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    seen_on_bus: list[str] = []

    async def keep(delivery: Delivery) -> None:
        seen_on_bus.append(encode(delivery.event))
        await delivery.ack()

    # A consumer on the exchange bound to every routing key: what the broker carries.
    await system.bus.consume(QueueSpec(f"spy-{uuid.uuid4().hex[:8]}", bindings=("#",), durable=False), keep)

    alice1 = await device(system, "alice", tmp_path, register=True)
    alice2 = await device(system, "alice", tmp_path)
    bob1 = await device(system, "bob", tmp_path, register=True)
    bob2 = await device(system, "bob", tmp_path)
    alice_id, bob_id = alice1.session.user.id, bob1.session.user.id
    recovery_key = await alice1.e2ee.setup_backup()
    assert len(recovery_key.split()) == 13
    secret = f"the vault code is {uuid.uuid4().hex}"
    try:
        assert alice1.chat is not None and bob1.chat is not None
        outgoing = await alice1.chat.send(secret, to=bob_id)
        ack = await outgoing.acked
        # Readable on both of Bob's devices and on Alice's other device.
        for reader, other in ((bob1, alice_id), (bob2, alice_id), (alice2, bob_id), (alice1, bob_id)):
            await wait_until(lambda r=reader, o=other: secret in r.texts(o))
            assert reader.e2ee.security(ack.message_id).security in (Security.ENCRYPTED, Security.PLAIN)
        assert bob1.e2ee.security(ack.message_id).security is Security.ENCRYPTED
        # Bob answers: the same path the other way, Alice's two devices read it.
        answer = f"answer {uuid.uuid4().hex}"
        await (await bob2.chat.send(answer, to=alice_id)).acked  # type: ignore[union-attr]
        await wait_until(lambda: answer in alice2.texts(bob_id) and answer in alice1.texts(bob_id)
                         and answer in bob1.texts(alice_id))

        # The database holds no plaintext: empty bodies, ciphertext beside them.
        async with system.engine.connect() as conn:  # type: ignore[attr-defined]
            rows = (await conn.execute(sa.select(messages.c.body, messages.c.ciphertext))).all()
        assert rows and all(row.body == "" and row.ciphertext for row in rows)
        for text in (secret, answer):
            assert not any(text in (row.ciphertext or "") for row in rows)
            assert not any(text in event for event in seen_on_bus), "plaintext on the broker"
        assert any("ciphertext" in event for event in seen_on_bus), "the spy saw the messages"

        # A new device of Alice with the recovery key reads the past; one without says why not.
        alice3 = await device(system, "alice", tmp_path, recovery_key=recovery_key)
        alice4 = await device(system, "alice", tmp_path)
        try:
            await alice3.chat.load_history(bob_id)  # type: ignore[union-attr]
            await alice4.chat.load_history(bob_id)  # type: ignore[union-attr]
            assert secret in alice3.texts(bob_id)
            assert manager.NO_KEYS_HERE in alice4.texts(bob_id)
            assert alice4.e2ee.security(ack.message_id).security is Security.UNREADABLE
        finally:
            await close(alice3, alice4)
    finally:
        await close(alice1, alice2, bob1, bob2)
    logged = caplog.text + "".join(capfd.readouterr())
    for text in (secret, answer, recovery_key, recovery_key.replace(" ", "")):
        assert text not in logged, "a plaintext or the recovery key in the log"


async def test_substituted_keys_and_changed_devices_are_caught(system: System, tmp_path: Path) -> None:
    alice = await device(system, "alice", tmp_path, register=True)
    bob = await device(system, "bob", tmp_path, register=True)
    bob_id, alice_id = bob.session.user.id, alice.session.user.id
    try:
        # Both compute the same safety number; Alice marks the conversation verified.
        number = await alice.e2ee.safety_number(bob_id)
        assert number == await bob.e2ee.safety_number(alice_id)
        assert len(number.split()) == 12
        assert not await alice.e2ee.verify(bob_id, "00000 " * 12)
        assert await alice.e2ee.verify(bob_id, number)
        await (await alice.chat.send("hello, verified", to=bob_id)).acked  # type: ignore[union-attr]
        await wait_until(lambda: "hello, verified" in bob.texts(alice_id))
        sent = next(iter(alice.chat.store.messages(bob_id)))  # type: ignore[union-attr]
        assert alice.e2ee.security(sent.id).security is Security.VERIFIED
        assert bob.e2ee.security(sent.id).security is Security.ENCRYPTED  # bob did not verify alice
        # Bob logs in somewhere else: the verified conversation warns before the next send.
        bob_elsewhere = await device(system, "bob", tmp_path, connect=False)
        with pytest.raises(VerificationChanged):
            await alice.chat.send("are you still you?", to=bob_id)  # type: ignore[union-attr]
        alice.e2ee.accept_changes(bob_id)
        # The server swaps the identity key of a device Alice has seen: caught, nothing sent.
        other = (await device(system, "carol", tmp_path, register=True, connect=False))
        carol_curve, _ = other.e2ee.identity
        async with system.engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(sa.update(devices).where(devices.c.session_id == bob.session.session_id)
                               .values(curve25519=carol_curve))
        with pytest.raises(KeysChanged) as caught:
            await alice.chat.send("to a swapped key", to=bob_id)  # type: ignore[union-attr]
        assert "not signed" in caught.value.message or "changed" in caught.value.message
        await close(bob_elsewhere, other)
    finally:
        await close(alice, bob)


async def test_replays_and_used_one_time_keys_are_told_in_plain_words(system: System, tmp_path: Path) -> None:
    alice = await device(system, "alice", tmp_path, register=True)
    bob = await device(system, "bob", tmp_path, register=True)
    bob_id, alice_id = bob.session.user.id, alice.session.user.id
    try:
        await (await alice.chat.send("first", to=bob_id)).acked  # type: ignore[union-attr]
        await wait_until(lambda: "first" in bob.texts(alice_id))
        stored = next(m for m in alice.chat.store.messages(bob_id))  # type: ignore[union-attr]
        original = stored.ciphertext
        assert original is not None
        # Alice's own (compromised) client replays the same ciphertext as a new message.
        async with system.client(alice.session.token) as ws:
            await ws.expect("hello")
            await ws.send_frame(type="send", client_msg_id="replayed-1", recipient_id=bob_id, body="",
                                ciphertext=original.model_dump(mode="json"))
            replay_ack = await ws.expect("ack")
            # The server refuses plaintext beside ciphertext, and ciphertext in the public room.
            await ws.send_frame(type="send", client_msg_id="leak-1", recipient_id=bob_id, body="plain words",
                                ciphertext=original.model_dump(mode="json"))
            assert (await ws.expect("error")).code == "encrypted_invalid"
            await ws.send_frame(type="send", client_msg_id="leak-2", recipient_id=None, body="",
                                ciphertext=original.model_dump(mode="json"))
            assert (await ws.expect("error")).code == "encrypted_invalid"
        await wait_until(lambda: replay_ack.message_id in {m.id for m in bob.chat.store.messages(alice_id)})  # type: ignore[union-attr]
        status = bob.e2ee.security(replay_ack.message_id)
        assert status.security is Security.UNREADABLE
        assert status.reason in (manager.REPLAYED, manager.MISMATCH)
        # A device that lost its Olm session gets a pre-key message for a one-time key it has
        # already used: told so, not a bare failure.
        bob.e2ee._sessions.clear()  # noqa: SLF001 - the state a restored old copy of the device would have
        replayed = stored.model_copy(update={"id": replay_ack.message_id + 1000, "client_msg_id": "again"})
        opened = bob.e2ee.open(replayed)
        assert opened.body == manager.USED_ONE_TIME_KEY
        # Bob's device list changes mid-conversation: Alice is told before the next message.
        notices: list[str] = []
        alice.e2ee.on_notice = notices.append
        alice.e2ee.name_of = lambda _user_id: "bob"
        bob_tablet = await device(system, "bob", tmp_path, connect=False)
        await (await alice.chat.send("after the new login", to=bob_id)).acked  # type: ignore[union-attr]
        assert len(notices) == 1 and notices[0].startswith("bob has 1 new device(s)")
        await close(bob_tablet)
    finally:
        await close(alice, bob)
