"""A plain MDP/0.2 worker written from docs/protocol.md with bare pyzmq.

It does not import binglide: it shows that a worker in any language needs only
ZeroMQ and the protocol document. It serves ``upper``: the text of a request,
in capitals.

- From a binglide client (``client.request("upper", {"text": "abc"})``) the
  request payload is binglide's body format (a JSON header frame, see
  "Payloads" in docs/protocol.md); the answer is a binglide report whose data
  is the capitalised text as a uint8 array, and whose meta holds it as text.
- From a plain MDP/0.2 client, any other payload is answered frame by frame
  in capitals.

Run it against a broker::

    python examples/raw_worker.py tcp://127.0.0.1:5555 --heartbeat-interval 1.0
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

import zmq

WORKER = b"MDPW02"
READY, REQUEST, PARTIAL, FINAL, HEARTBEAT, DISCONNECT = (bytes([n]) for n in range(1, 7))
SERVICE = b"upper"
LIVENESS = 3  # heartbeat intervals of silence before the broker counts as dead


def answer(body: list[bytes]) -> list[bytes]:
    """Return the reply body for a request body."""
    try:
        header = json.loads(body[0]) if body else None
    except ValueError:
        header = None
    if not (isinstance(header, dict) and header.get("v") == 1):
        return [frame.upper() for frame in body]  # a plain MDP/0.2 client
    text = str((header.get("body") or {}).get("text", "")).upper()
    data = text.encode()
    report = {
        "v": 1,
        "completion": 1.0,
        "precision": 1.0,
        "meta": {"text": text},
        "data": "array",
        "keys": [],
        "arrays": [{"dtype": "|u1", "shape": [len(data)]}],
    }
    return [json.dumps(report).encode(), data]


class RawWorker:
    """One MDP/0.2 worker connection, re-made whenever the broker is lost."""

    def __init__(self, address: str, heartbeat_interval: float) -> None:
        self.address = address
        self.interval = heartbeat_interval
        self.context = zmq.Context()
        self.socket: zmq.Socket[bytes] | None = None
        self.running = True

    def connect(self) -> None:
        """Open a new socket and register (MDP/0.2: a new socket after a loss)."""
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.address)
        self.send(READY, SERVICE)
        self.expiry = time.monotonic() + LIVENESS * self.interval

    def send(self, command: bytes, *frames: bytes) -> None:
        assert self.socket is not None
        self.socket.send_multipart([WORKER, command, *frames])
        self.next_heartbeat = time.monotonic() + self.interval

    def serve(self) -> None:
        """Serve until SIGTERM or SIGINT, then say DISCONNECT."""
        self.connect()
        poller = zmq.Poller()
        while self.running:
            assert self.socket is not None
            poller.register(self.socket, zmq.POLLIN)
            timeout = max(0.0, min(self.next_heartbeat, self.expiry) - time.monotonic())
            events = dict(poller.poll(round(timeout * 1000)))
            poller.unregister(self.socket)
            if events:
                self.handle(self.socket.recv_multipart())
            now = time.monotonic()
            if now >= self.expiry:
                self.connect()  # the broker fell silent: register again
            elif now >= self.next_heartbeat:
                self.send(HEARTBEAT)
        self.send(DISCONNECT)
        assert self.socket is not None
        self.socket.close(linger=100)
        self.context.term()

    def handle(self, frames: list[bytes]) -> None:
        # A leading empty frame is an MDP/0.1 habit some brokers keep.
        if frames and frames[0] == b"":
            frames = frames[1:]
        if len(frames) < 2 or frames[0] != WORKER:
            return  # not MDP/0.2: drop it
        self.expiry = time.monotonic() + LIVENESS * self.interval  # any command counts
        command = frames[1]
        if command == REQUEST and len(frames) >= 4 and frames[3] == b"":
            address, body = frames[2], frames[4:]
            self.send(FINAL, address, b"", *answer(body))
        elif command == DISCONNECT:
            self.connect()
        # HEARTBEAT needs nothing more; other commands are binglide
        # extensions, never sent to a worker whose READY did not ask for them.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    worker = RawWorker(args.address, args.heartbeat_interval)

    def stop(*_: object) -> None:
        worker.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
