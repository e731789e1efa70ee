"""The ceiling: a minimal ``websockets`` broadcast server, same TLS and payload as ChaSe.

    python -m bench.bare --port P --cert server.pem --key server.key [--loop asyncio|uvloop]

No authentication, broker or database: every text frame a client sends is wrapped in a frame
shaped like ChaSe's ``message`` frame (same fields, same size) and handed to
``websockets.broadcast`` for every open connection. Whatever ChaSe's fan-out costs above this is
ChaSe's own. Prints ``ready`` once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys
from datetime import UTC, datetime

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


def message_frame(body: str, message_id: int, sender_id: int) -> str:
    """A frame with the fields and size of ChaSe's ``message`` frame."""
    return json.dumps({
        "type": "message",
        "message": {
            "id": message_id,
            "sender": {"id": sender_id, "username": f"bench_s{sender_id}"},
            "recipient_id": None,
            "body": body,
            "created_at": datetime.now(UTC).isoformat(),
            "client_msg_id": f"m{message_id}",
            "prev_id": message_id - 1,
        },
    }, separators=(",", ":"))


async def main(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    connections: set[ServerConnection] = set()
    next_id = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal next_id
        connections.add(ws)
        try:
            await ws.send('{"type":"hello"}')
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "send":
                    next_id += 1
                    broadcast(connections, message_frame(frame["body"], next_id, 1))
        except ConnectionClosed:
            pass  # dropped by the client (the reconnect storm does that on purpose)
        finally:
            connections.discard(ws)

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    # The same listen backlog as the gateway (services.gateway.server.LISTEN_BACKLOG).
    async with serve(handler, "127.0.0.1", args.port, ssl=context, compression=None, max_size=2**20, backlog=4096):
        print("ready", flush=True)
        await stop


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args(argv)
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(args))


if __name__ == "__main__":
    run(sys.argv[1:])
