"""End-to-end encryption for one device of one logged-in user (docs/e2ee.md).

:class:`E2EE` owns the device's Olm account (vodozemac), its Olm sessions with other devices,
what it learned about other people's devices (trust on first use, then verification), and the
plaintext of the encrypted messages it has read, all kept in the encrypted :class:`Vault`.

- :meth:`E2EE.setup` makes or loads the account and publishes the device's keys.
- :meth:`E2EE.seal` encrypts a private message for every device of both people (one's own
  other devices included) and for both people's key backups: an :class:`Encrypted` envelope.
- :meth:`E2EE.open` turns a stored message back into text, or into a plain sentence saying
  why it cannot be read here; :meth:`E2EE.security` says how it was protected.
- :meth:`E2EE.safety_number`, :meth:`E2EE.verify`: comparing keys with the other person.
- :meth:`E2EE.setup_backup`, :meth:`E2EE.restore_backup`: the recovery key.

Nothing here logs a key, a pickle or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import vodozemac

from chase.devicekeys import backup_payload, identity_payload
from chase.schemas import BackupCiphertext, ChatMessage, Encrypted, OlmCiphertext
from client.core.api import AuthSession
from client.core.e2ee.keys_api import DeviceKeys, KeysApi
from client.core.e2ee.safety import fingerprint
from client.core.e2ee.vault import Vault
from client.core.errors import ClientError, ClientErrorCode

#: One-time keys kept on the server; topped up when fewer than half are left.
ONE_TIME_KEYS = 50
#: Plaintexts of read messages kept (the oldest are forgotten past this).
MAX_READ = 20_000


class E2EEError(ClientError):
    """Something about the keys that the person must know before the message goes out."""

    code = ClientErrorCode.MESSAGE_REJECTED


class KeysChanged(E2EEError):
    """A device that was seen before now has other keys: possibly a substituted key."""


class VerificationChanged(E2EEError):
    """The devices of a verified conversation changed since it was verified."""


class NoDevice(E2EEError):
    """The other person has no device that can receive encrypted messages."""


class WrongRecoveryKey(ClientError):
    """The recovery key given does not open this account's key backup."""


class Security(StrEnum):
    PLAIN = "plain"            # not end-to-end encrypted (the public room)
    ENCRYPTED = "encrypted"    # decrypted; the other person's keys not verified
    VERIFIED = "verified"      # decrypted, and the conversation is verified
    UNREADABLE = "unreadable"  # cannot be read on this device (the reason says why)


# What people are told, in plain words (never a bare "unable to decrypt").
NO_KEYS_HERE = ("This message was encrypted before this device was set up, so this device has no key for it. "
                "Enter your recovery key to read older messages on this device.")
NO_KEYS_NO_BACKUP = ("This message was encrypted before this device was set up, and no key backup holds it, "
                     "so it cannot be read on this device.")
USED_ONE_TIME_KEY = ("This message cannot be decrypted: it was encrypted with a one-time key this device has "
                     "already used or never had. It may be a replay of an older message.")
REPLAYED = ("This message cannot be decrypted: its key was already used by an earlier message. "
            "It is a replayed or reordered copy, or the sender's session was reset.")
MISMATCH = ("This message was rejected: its encrypted content belongs to another message "
            "(the server replayed or moved it).")
BAD_CIPHERTEXT = "This message cannot be decrypted: its encrypted content is damaged."
WRONG_SENDER_KEY = ("This message was rejected: it claims to come from a device whose keys do not match the "
                    "keys this device knows for it (a possible substituted key).")


@dataclass(frozen=True)
class Status:
    security: Security
    #: For UNREADABLE: why, in plain words.
    reason: str = ""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def recovery_key_text(secret: bytes) -> str:
    """The recovery key as people write it down: base32 in groups of four."""
    text = base64.b32encode(secret).decode().rstrip("=")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def recovery_key_bytes(text: str) -> bytes:
    compact = "".join(text.split()).upper()
    try:
        raw = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (binascii.Error, ValueError):
        raise WrongRecoveryKey("that is not a recovery key (it is 13 groups of letters and digits)") from None
    if len(raw) != 32:
        raise WrongRecoveryKey("that is not a recovery key (it is 13 groups of letters and digits)")
    return raw


class E2EE:
    def __init__(self, keys: KeysApi, session: AuthSession, vault: Vault) -> None:
        self.me = session.user
        self.device_id = session.session_id
        self._keys = keys
        self._vault = vault
        self._account: vodozemac.Account | None = None
        #: their Curve25519 identity key -> pickled Olm sessions with that device (newest last)
        self._sessions: dict[str, list[vodozemac.Session]] = {}
        #: user id -> device id -> [curve25519, ed25519] as first seen (trust on first use)
        self._known: dict[str, dict[str, list[str]]] = {}
        #: user id -> the safety number both people compared
        self._verified: dict[str, str] = {}
        #: message id -> [plaintext or "", security, reason]
        self._read: dict[str, list[str]] = {}
        #: client_msg_id -> plaintext of one's own encrypted messages sent from this device
        self._sent: dict[str, str] = {}
        #: (sender id, client_msg_id) -> message id: one plaintext per message, never two
        self._seen: dict[str, int] = {}
        self._backup_secret: bytes | None = None
        self._batch = self._dirty = False
        #: Called with a sentence for the person when something about the keys changed that
        #: does not stop a send (a new device of the other person, for example).
        self.on_notice: Callable[[str], None] | None = None
        #: How a user is named in those sentences (the UI sets it from its directory).
        self.name_of: Callable[[int], str] = lambda user_id: f"user {user_id}"
        #: One-time keys used by incoming sessions since the last top-up.
        self._keys_used = 0

    def __repr__(self) -> str:
        return f"E2EE(user={self.me.id}, device={self.device_id})"

    # --- life cycle -----------------------------------------------------------------------

    async def setup(self) -> None:
        """Load this device's keys (or make them) and publish them with one-time keys."""
        saved = self._vault.load()
        key = self._vault.pickle_key
        if saved is None:
            self._account = vodozemac.Account()
        else:
            self._account = vodozemac.Account.from_pickle(saved["account"], key)
            self._sessions = {k: [vodozemac.Session.from_pickle(p, key) for p in v]
                              for k, v in saved["sessions"].items()}
            self._known, self._verified = saved["known"], saved["verified"]
            self._read, self._sent, self._seen = saved["read"], saved["sent"], saved["seen"]
            self._backup_secret = base64.b64decode(saved["backup"]) if saved.get("backup") else None
        account = self._account
        curve, ed = account.curve25519_key.to_base64(), account.ed25519_key.to_base64()
        signature = account.sign(identity_payload(self.me.id, self.device_id, curve, ed)).to_base64()
        stored = await self._keys.publish(curve, ed, signature, self._fresh_keys(ONE_TIME_KEYS) if saved is None else {})
        account.mark_keys_as_published()
        self._save()
        if stored < ONE_TIME_KEYS // 2:
            await self._keys.add_one_time_keys(self._fresh_keys(ONE_TIME_KEYS - stored))
            account.mark_keys_as_published()
            self._save()

    def _fresh_keys(self, count: int) -> dict[str, str]:
        assert self._account is not None
        self._account.generate_one_time_keys(count)
        return {kid: key.to_base64() for kid, key in self._account.one_time_keys.items()}

    def _save(self) -> None:
        assert self._account is not None
        self._dirty = False
        key = self._vault.pickle_key
        while len(self._read) > MAX_READ:
            self._read.pop(next(iter(self._read)))
        self._vault.save({
            "account": self._account.pickle(key),
            "sessions": {k: [s.pickle(key) for s in v[-3:]] for k, v in self._sessions.items()},
            "known": self._known, "verified": self._verified, "read": self._read, "sent": self._sent,
            "seen": self._seen, "backup": _b64(self._backup_secret) if self._backup_secret else None,
        })

    @property
    def identity(self) -> tuple[str, str]:
        """This device's (Curve25519, Ed25519) public identity keys."""
        assert self._account is not None
        return self._account.curve25519_key.to_base64(), self._account.ed25519_key.to_base64()

    # --- devices and trust ------------------------------------------------------------------

    async def devices(self, user_id: int) -> list[DeviceKeys]:
        """The user's devices whose signatures hold, checked against what this device knew.

        Raises :class:`KeysChanged` when a device seen before comes back with other keys, or
        a listed device's keys are not signed by itself: the server (or someone between)
        substituted a key. Nothing is sent to such a device."""
        listed = await self._keys.devices(user_id)
        good = []
        known = self._known.setdefault(str(user_id), {})
        for device in listed:
            if device.user_id != user_id:
                raise KeysChanged("the server listed another person's device as this person's; nothing was sent")
            try:
                vodozemac.Ed25519PublicKey.from_base64(device.ed25519).verify_signature(
                    identity_payload(user_id, device.device_id, device.curve25519, device.ed25519),
                    vodozemac.Ed25519Signature.from_base64(device.signature))
            except (vodozemac.SignatureException, vodozemac.KeyException, vodozemac.DecodeException):
                raise KeysChanged(
                    f"a device of user {user_id} ({device.device_id[:8]}) has keys that are not signed by that "
                    "device: the keys may have been substituted. Nothing was sent.") from None
            seen = known.get(device.device_id)
            if seen is not None and seen != [device.curve25519, device.ed25519]:
                raise KeysChanged(
                    f"the keys of a device of user {user_id} ({device.device_id[:8]}) changed since this device "
                    "last saw them: someone may be intercepting. Compare safety numbers before sending.")
            good.append(device)
        added = [d.device_id for d in good if d.device_id not in known and d.device_id != self.device_id]
        if known and added:
            who = "You have" if user_id == self.me.id else f"{self.name_of(user_id)} has"
            self._tell(f"{who} {len(added)} new device(s) ({', '.join(i[:8] for i in added)}): messages are now "
                       "encrypted for them too. Compare safety numbers to be sure they are genuine.")
        for device in good:
            known.setdefault(device.device_id, [device.curve25519, device.ed25519])
        return good

    def _tell(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)

    async def safety_number(self, user_id: int) -> str:
        """The number both people compare: it covers every device of both."""
        mine = await self.devices(self.me.id)
        theirs = mine if user_id == self.me.id else await self.devices(user_id)
        self._save()
        return fingerprint({self.me.id: [(d.device_id, d.ed25519) for d in mine],
                            user_id: [(d.device_id, d.ed25519) for d in theirs]})

    async def verify(self, user_id: int, number: str) -> bool:
        """Mark the conversation verified if ``number`` is today's safety number (the one the
        other person read out); False, and nothing marked, when it is not."""
        current = await self.safety_number(user_id)
        if " ".join(number.split()) != current:
            return False
        self._verified[str(user_id)] = current
        self._save()
        return True

    def is_verified(self, user_id: int) -> bool:
        return str(user_id) in self._verified

    async def check_verified(self, user_id: int) -> None:
        """Raise :class:`VerificationChanged` when a verified conversation's keys changed."""
        if str(user_id) not in self._verified:
            return
        if await self.safety_number(user_id) != self._verified[str(user_id)]:
            raise VerificationChanged(
                "The devices or keys in this verified conversation changed since you compared safety numbers "
                "(a new login, or a substituted key). Compare them again, or accept the change, before sending.")

    def accept_changes(self, user_id: int) -> None:
        """Trust the user's devices as they are now (after the person was told they changed)."""
        self._known.pop(str(user_id), None)
        self._verified.pop(str(user_id), None)
        self._save()

    # --- sending ----------------------------------------------------------------------------

    async def replenish(self) -> None:
        """Top the device's one-time keys on the server up to :data:`ONE_TIME_KEYS`."""
        stored = await self._keys.one_time_key_count()
        if stored < ONE_TIME_KEYS // 2:
            await self._keys.add_one_time_keys(self._fresh_keys(ONE_TIME_KEYS - stored))
            assert self._account is not None
            self._account.mark_keys_as_published()
        self._keys_used = 0
        self._save()

    async def seal(self, body: str, to: int, client_msg_id: str) -> Encrypted:
        """Encrypt ``body`` for every device of ``to`` and of oneself (this one excepted)."""
        assert self._account is not None
        if self._keys_used >= ONE_TIME_KEYS // 4:
            await self.replenish()
        await self.check_verified(to)
        theirs = await self.devices(to)
        mine = [d for d in (await self.devices(self.me.id) if to != self.me.id else theirs)
                if d.device_id != self.device_id]
        if to != self.me.id and not theirs:
            raise NoDevice("This person has no device that can receive encrypted messages yet "
                           "(they have not logged in with an up-to-date client). Nothing was sent.")
        payload = json.dumps({"v": 1, "body": body, "sender_id": self.me.id, "recipient_id": to,
                              "client_msg_id": client_msg_id, "sender_device": self.device_id}).encode("utf-8")
        recipients = []
        targets = {d.device_id: d for d in (theirs if to != self.me.id else []) + mine if d.device_id != self.device_id}
        for device in targets.values():
            session = await self._outbound(device)
            if session is None:
                continue  # no one-time key left: that device reads it from the key backup
            kind, raw = session.encrypt(payload).to_parts()
            recipients.append(OlmCiphertext(device_id=device.device_id, type=kind, body=_b64(raw)))
        backups = [b for b in [await self._backup_for(self.me.id)] + ([await self._backup_for(to)]
                                                                       if to != self.me.id else []) if b]
        sealed = [self._to_backup(user, key, payload) for user, key in backups]
        # A note to self from one's only device has no recipient but the backup: this device
        # reads it from its own record of what it sent.
        self._sent[client_msg_id] = body
        self._save()
        curve, _ = self.identity
        return Encrypted(sender_device=self.device_id, sender_key=curve, recipients=recipients, backups=sealed)

    @staticmethod
    def _to_backup(user_id: int, public_key: str, payload: bytes) -> BackupCiphertext:
        # The message's fields by name (the order of Message.to_base64()'s tuple is not the
        # documented one in vodozemac 0.10).
        sealed = vodozemac.PkEncryption.from_key(vodozemac.Curve25519PublicKey.from_base64(public_key)).encrypt(payload)
        return BackupCiphertext(user_id=user_id, public_key=public_key, ciphertext=_b64(bytes(sealed.ciphertext)),
                                mac=_b64(bytes(sealed.mac)), ephemeral_key=_b64(bytes(sealed.ephemeral_key)))

    async def _outbound(self, device: DeviceKeys) -> vodozemac.Session | None:
        assert self._account is not None
        sessions = self._sessions.get(device.curve25519)
        if sessions:
            return sessions[-1]
        claimed = await self._keys.claim(device.device_id)
        if claimed is None:
            return None
        session = self._account.create_outbound_session(
            vodozemac.Curve25519PublicKey.from_base64(device.curve25519),
            vodozemac.Curve25519PublicKey.from_base64(claimed.public_key))
        self._sessions.setdefault(device.curve25519, []).append(session)
        return session

    async def _backup_for(self, user_id: int) -> tuple[int, str] | None:
        """The user's backup key if one of their devices this device trusts signed it."""
        found = await self._keys.backup(user_id)
        if found is None:
            return None
        known = self._known.get(str(user_id), {})
        if [found.signer_ed25519] not in [[k[1]] for k in known.values()]:
            return None
        try:
            vodozemac.Ed25519PublicKey.from_base64(found.signer_ed25519).verify_signature(
                backup_payload(user_id, found.public_key), vodozemac.Ed25519Signature.from_base64(found.signature))
        except (vodozemac.SignatureException, vodozemac.KeyException, vodozemac.DecodeException):
            return None
        return user_id, found.public_key

    def sent_plaintext(self, client_msg_id: str) -> str | None:
        return self._sent.get(client_msg_id)

    # --- receiving --------------------------------------------------------------------------

    def security(self, message_id: int) -> Status:
        """How the message was protected. Verified only when its conversation is verified and
        the sending device is one whose keys were compared (a device added since is merely
        encrypted)."""
        found = self._read.get(str(message_id))
        if found is None:
            return Status(Security.PLAIN)
        security = Security(found[1])
        if security is Security.ENCRYPTED and len(found) == 7:
            sender, other, device_id, key = found[3:]
            device = self._known.get(sender, {}).get(device_id)
            from_here = int(sender) == self.me.id and device_id == self.device_id
            if other in self._verified and (from_here or (device is not None and device[0] == key)):
                security = Security.VERIFIED
        return Status(security, found[2])

    def open_all(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """:meth:`open` for a page of messages, writing the vault once."""
        self._batch = True
        try:
            opened = [self.open(message) for message in messages]
        finally:
            self._batch = False
        if self._dirty:
            self._save()
        return opened

    def open(self, message: ChatMessage) -> ChatMessage:
        """The message with its text, or with a sentence saying why it cannot be read here."""
        envelope = message.ciphertext
        if envelope is None:
            return message
        known = self._read.get(str(message.id))
        if known is None:
            text, security, reason = self._decrypt(message, envelope)
            # Kept, the unreadable too: a message key is used once, so a second decryption
            # would fail. restore_backup() forgets the unreadable ones.
            other = message.recipient_id if message.sender.id == self.me.id else message.sender.id
            self._read[str(message.id)] = [text, security.value, reason, str(message.sender.id), str(other),
                                           envelope.sender_device, envelope.sender_key]
            if self._batch:
                self._dirty = True
            else:
                self._save()
        else:
            text, security, reason = known[0], Security(known[1]), known[2]
        return message.model_copy(update={"body": text if security is not Security.UNREADABLE else reason})

    def _decrypt(self, message: ChatMessage, envelope: Encrypted) -> tuple[str, Security, str]:
        if message.sender.id == self.me.id and envelope.sender_device == self.device_id:
            text = self._sent.get(message.client_msg_id)
            if text is not None:
                return self._accept(message, text)
        entry = next((r for r in envelope.recipients if r.device_id == self.device_id), None)
        if entry is None:
            return self._from_backup(message, envelope)
        sender_devices = self._known.get(str(message.sender.id), {})
        seen = sender_devices.get(envelope.sender_device)
        if seen is not None and seen[0] != envelope.sender_key:
            return "", Security.UNREADABLE, WRONG_SENDER_KEY
        try:
            raw = base64.b64decode(entry.body)
            olm = vodozemac.AnyOlmMessage.from_parts(entry.type, raw)
        except (binascii.Error, ValueError, vodozemac.DecodeException):
            return "", Security.UNREADABLE, BAD_CIPHERTEXT
        try:
            payload = self._olm_decrypt(envelope.sender_key, entry.type, olm)
        except vodozemac.SessionCreationException:
            return "", Security.UNREADABLE, USED_ONE_TIME_KEY
        except (vodozemac.OlmDecryptionException, vodozemac.DecodeException, vodozemac.KeyException):
            return "", Security.UNREADABLE, REPLAYED
        return self._check(message, envelope, payload)

    def _olm_decrypt(self, sender_key: str, kind: int, olm: vodozemac.AnyOlmMessage) -> bytes:
        assert self._account is not None
        sessions = self._sessions.setdefault(sender_key, [])
        if kind == 0:
            pre = olm.to_pre_key()
            for session in sessions:
                if session.session_matches(pre):
                    return session.decrypt(olm)
            session, plaintext = self._account.create_inbound_session(
                vodozemac.Curve25519PublicKey.from_base64(sender_key), pre)
            sessions.append(session)
            self._keys_used += 1
            return plaintext
        failure: Exception = vodozemac.OlmDecryptionException("no session with that device")
        for session in reversed(sessions):
            try:
                return session.decrypt(olm)
            except vodozemac.OlmDecryptionException as exc:
                failure = exc
        raise failure

    def _from_backup(self, message: ChatMessage, envelope: Encrypted) -> tuple[str, Security, str]:
        mine = next((b for b in envelope.backups if b.user_id == self.me.id), None)
        if mine is None:
            return "", Security.UNREADABLE, NO_KEYS_NO_BACKUP
        if self._backup_secret is None:
            return "", Security.UNREADABLE, NO_KEYS_HERE
        try:
            decryption = vodozemac.PkDecryption.from_key(vodozemac.Curve25519SecretKey.from_bytes(self._backup_secret))
            payload = decryption.decrypt(vodozemac.Message(
                base64.b64decode(mine.ciphertext), base64.b64decode(mine.mac), base64.b64decode(mine.ephemeral_key)))
        except Exception:  # noqa: BLE001 - any failure of the backup copy means the same to people
            return "", Security.UNREADABLE, BAD_CIPHERTEXT
        return self._check(message, envelope, payload)

    def _check(self, message: ChatMessage, envelope: Encrypted, payload: bytes) -> tuple[str, Security, str]:
        try:
            data = json.loads(payload)
            fields = (data["sender_id"], data["recipient_id"], data["client_msg_id"], data["sender_device"])
            text = data["body"]
        except (ValueError, KeyError, TypeError):
            return "", Security.UNREADABLE, BAD_CIPHERTEXT
        if fields != (message.sender.id, message.recipient_id, message.client_msg_id, envelope.sender_device) \
                or not isinstance(text, str):
            return "", Security.UNREADABLE, MISMATCH
        return self._accept(message, text)

    def _accept(self, message: ChatMessage, text: str) -> tuple[str, Security, str]:
        key = f"{message.sender.id}:{message.client_msg_id}"
        first = self._seen.setdefault(key, message.id)
        if first != message.id:
            return "", Security.UNREADABLE, MISMATCH
        return text, Security.ENCRYPTED, ""

    # --- key backup -------------------------------------------------------------------------

    async def setup_backup(self) -> str:
        """Make a new recovery key, publish its public half (signed by this device) and return
        it to be shown once: the person keeps it; this device keeps a copy in its vault."""
        assert self._account is not None
        decryption = vodozemac.PkDecryption()
        public = decryption.public_key.to_base64()
        signature = self._account.sign(backup_payload(self.me.id, public)).to_base64()
        await self._keys.set_backup(public, signature)
        self._backup_secret = decryption.key.to_bytes()
        self._save()
        return recovery_key_text(self._backup_secret)

    @property
    def has_backup_key(self) -> bool:
        return self._backup_secret is not None

    async def restore_backup(self, recovery_key: str) -> None:
        """Unlock the key backup on this device, so older messages become readable here."""
        assert self._account is not None
        secret = recovery_key_bytes(recovery_key)
        decryption = vodozemac.PkDecryption.from_key(vodozemac.Curve25519SecretKey.from_bytes(secret))
        public = decryption.public_key.to_base64()
        found = await self._keys.backup(self.me.id)
        if found is None or found.public_key != public:
            raise WrongRecoveryKey("this recovery key does not match your key backup")
        self._backup_secret = secret
        # Re-sign with this device, so others trust the backup key while this device lives.
        await self._keys.set_backup(public, self._account.sign(backup_payload(self.me.id, public)).to_base64())
        # Forget "cannot read" verdicts: they may be readable now.
        self._read = {k: v for k, v in self._read.items() if v[1] != Security.UNREADABLE.value}
        self._save()
