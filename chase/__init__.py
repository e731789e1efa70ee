"""ChaSe: real-time public and private chat over TLS, through a message broker.

This package is the small core that every service shares: configuration, the wire and bus
schemas, the bus port and its adapters, the store (tables and migrations), TLS helpers and the
``chase`` command line. The services live in ``services/``; the desktop client in ``client/``.
"""

__version__ = "0.1.0"
