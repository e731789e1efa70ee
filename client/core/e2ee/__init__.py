"""End-to-end encryption of private messages in the client core (docs/e2ee.md).

:mod:`.vault` keeps the keys encrypted at rest, :mod:`.keys_api` speaks the auth service's
device endpoints, :mod:`.crypto` wires vodozemac (Olm, key backup), :mod:`.safety` makes
safety numbers, :mod:`.manager` puts them together for the chat client. No Qt here.
"""
