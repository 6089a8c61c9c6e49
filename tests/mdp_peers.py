"""Majordomo peers written from the RFC texts alone, with bare pyzmq: no binglide here.

- 7/MDP (MDP/0.1, https://rfc.zeromq.org/spec/7/): a client on a REQ socket
  (the RFC's recommendation: REQ adds and strips the empty frame 0) and a
  worker on a DEALER (every command starts with an empty frame; REPLY is
  0x03, HEARTBEAT 0x04, DISCONNECT 0x05).
- 18/MDP (MDP/0.2, https://rfc.zeromq.org/spec/18/): a client on a DEALER
  (REQUEST 0x01; PARTIAL 0x02 and FINAL 0x03 back) and a worker (READY 0x01,
  REQUEST 0x02, PARTIAL 0x03, FINAL 0x04, HEARTBEAT 0x05, DISCONNECT 0x06),
  and a minimal broker (one ROUTER for both sub-protocols, least recently
  used workers first, no MMI: RFC 18 alone).
- 8/MMI (https://rfc.zeromq.org/spec/8/): `mmi_service` asks ``mmi.service``.

The workers serve "upper": bodies in binglide's payload format
(docs/protocol.md, "Payloads": what a binglide client sends and reads) are
answered with a report of the text in capitals; any other body is answered
frame by frame in capitals. The 0.2 worker sends one PARTIAL before its FINAL.

Run the workers and the broker as processes::

    python tests/mdp_peers.py worker 0.1|0.2 ADDRESS SERVICE [--heartbeat-interval S]
    python tests/mdp_peers.py broker ADDRESS [--heartbeat-interval S]

A worker prints ``ready`` each time it sends READY; the broker prints
``listening on ADDRESS`` once bound.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import deque

import zmq

LIVENESS = 3  # heartbeat intervals of silence before a peer is dead (RFC: "usually 3-5")
GUIDE_HEARTBEAT = 2.5  # the ZeroMQ guide's Majordomo examples' interval

# -- payloads: docs/protocol.md, section 4 ---------------------------------------------------


def binglide_body(body: object) -> list[bytes]:
    """The frames of a request body in binglide's payload format (no arrays)."""
    return [json.dumps({"v": 1, "body": body, "arrays": []}).encode()]


def read_report(frames: list[bytes]) -> dict[str, object]:
    """The header of a binglide report, with its arrays' bytes under ``"frames"``."""
    header = json.loads(frames[0])
    assert isinstance(header, dict), header
    header["frames"] = frames[1:]
    return header


def _report(text: str, completion: float) -> list[bytes]:
    data = text.encode()
    header = {
        "v": 1,
        "completion": completion,
        "precision": 1.0,
        "meta": {"text": text},
        "data": "array",
        "keys": [],
        "arrays": [{"dtype": "|u1", "shape": [len(data)]}],
    }
    return [json.dumps(header).encode(), data]


def answer(body: list[bytes], *, completion: float = 1.0) -> list[bytes]:
    """The reply body of "upper" for a request body."""
    try:
        header = json.loads(body[0]) if body else None
    except ValueError:
        header = None
    if isinstance(header, dict) and header.get("v") == 1:
        text = str((header.get("body") or {}).get("text", ""))
        return _report(text.upper(), completion)
    return [frame.upper() for frame in body]


# -- clients -----------------------------------------------------------------------------


def _receive(sock: zmq.Socket[bytes], timeout: float) -> list[bytes]:
    if not sock.poll(round(timeout * 1000)):
        raise TimeoutError("no reply from the broker")
    return sock.recv_multipart()


def request_01(
    address: str, service: bytes, body: list[bytes], timeout: float = 10.0
) -> list[bytes]:
    """One MDP/0.1 exchange on a REQ socket: REQUEST, then the REPLY's body."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        sock.send_multipart([b"MDPC01", service, *body])  # REQ adds frame 0 (empty)
        reply = _receive(sock, timeout)
    finally:
        sock.close(linger=0)
    header, replied, *rest = reply
    assert header == b"MDPC01", reply
    assert replied == service, reply
    return rest


def request_02(
    address: str, service: bytes, body: list[bytes], timeout: float = 10.0
) -> tuple[list[list[bytes]], list[bytes]]:
    """One MDP/0.2 exchange on a DEALER: REQUEST, then the PARTIALs' and the FINAL's bodies."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    partials: list[list[bytes]] = []
    try:
        sock.connect(address)
        sock.send_multipart([b"MDPC02", b"\x01", service, *body])
        while True:
            reply = _receive(sock, timeout)
            header, command, replied, *rest = reply
            assert header == b"MDPC02", reply
            assert replied == service, reply
            if command == b"\x03":
                return partials, rest
            assert command == b"\x02", reply
            partials.append(rest)
    finally:
        sock.close(linger=0)


def mmi_service(address: str, name: bytes, *, version: str = "0.2") -> bytes:
    """Ask ``mmi.service`` (8/MMI) whether a worker serves `name`: b"200" or b"404"."""
    if version == "0.1":
        [code] = request_01(address, b"mmi.service", [name])
    else:
        _, [code] = request_02(address, b"mmi.service", [name])
    return code


# -- workers -----------------------------------------------------------------------------


class Worker:
    """An MDP/0.1 or MDP/0.2 worker: READY, then REQUEST/replies and heartbeats."""

    def __init__(self, version: str, address: str, service: bytes, interval: float) -> None:
        self.v1 = version == "0.1"
        self.address = address
        self.service = service
        self.interval = interval
        self.context = zmq.Context()
        self.socket: zmq.Socket[bytes] | None = None
        self.running = True
        if self.v1:
            self.head = [b"", b"MDPW01"]
            self.READY, self.REQUEST, self.REPLY = b"\x01", b"\x02", b"\x03"
            self.HEARTBEAT, self.DISCONNECT = b"\x04", b"\x05"
        else:
            self.head = [b"MDPW02"]
            self.READY, self.REQUEST, self.PARTIAL, self.FINAL = b"\x01", b"\x02", b"\x03", b"\x04"
            self.HEARTBEAT, self.DISCONNECT = b"\x05", b"\x06"

    def connect(self) -> None:
        """Open a new socket and send READY (RFC: a new socket after a DISCONNECT)."""
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.address)
        self.send(self.READY, self.service)
        print("ready", flush=True)
        self.expiry = time.monotonic() + LIVENESS * self.interval

    def send(self, command: bytes, *frames: bytes) -> None:
        assert self.socket is not None
        self.socket.send_multipart([*self.head, command, *frames])
        self.next_heartbeat = time.monotonic() + self.interval

    def serve(self) -> None:
        """Serve until SIGTERM, then send DISCONNECT."""
        self.connect()
        while self.running:
            assert self.socket is not None
            timeout = max(0.0, min(self.next_heartbeat, self.expiry) - time.monotonic())
            if self.socket.poll(round(timeout * 1000)):
                self.handle(self.socket.recv_multipart())
            now = time.monotonic()
            if now >= self.expiry:
                self.connect()  # the broker is silent: a new conversation
            elif now >= self.next_heartbeat:
                self.send(self.HEARTBEAT)
        self.send(self.DISCONNECT)
        assert self.socket is not None
        self.socket.close(linger=100)
        self.context.term()

    def handle(self, frames: list[bytes]) -> None:
        head = len(self.head)
        if frames[:head] != self.head or len(frames) <= head:
            return  # not our protocol: drop it
        self.expiry = time.monotonic() + LIVENESS * self.interval  # any command counts
        command, rest = frames[head], frames[head + 1 :]
        if command == self.REQUEST and len(rest) >= 2 and rest[1] == b"":
            address, body = rest[0], rest[2:]
            if self.v1:
                self.send(self.REPLY, address, b"", *answer(body))
            else:
                self.send(self.PARTIAL, address, b"", *answer(body, completion=0.5))
                self.send(self.FINAL, address, b"", *answer(body))
        elif command == self.DISCONNECT:
            self.connect()


# -- a minimal 18/MDP broker -------------------------------------------------------------------


class Broker:
    """RFC 18 alone: requests queued per service, given to idle workers, replies relayed."""

    def __init__(self, address: str, interval: float) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.interval = interval
        self.workers: dict[bytes, tuple[bytes, float]] = {}  # id -> (service, expiry)
        self.idle: dict[bytes, deque[bytes]] = {}  # service -> idle worker ids
        self.requests: dict[bytes, deque[tuple[bytes, list[bytes]]]] = {}
        self.running = True

    def serve(self) -> None:
        next_heartbeat = time.monotonic() + self.interval
        while self.running:
            timeout = max(0.0, next_heartbeat - time.monotonic())
            if self.socket.poll(round(timeout * 1000)):
                sender, *frames = self.socket.recv_multipart()
                if len(frames) >= 2 and frames[0] == b"MDPC02" and frames[1] == b"\x01":
                    self.on_request(sender, frames[2] if len(frames) > 2 else b"", frames[3:])
                elif len(frames) >= 2 and frames[0] == b"MDPW02":
                    self.on_worker(sender, frames[1], frames[2:])
                # Anything else is not RFC 18 from a client or worker: dropped.
            now = time.monotonic()
            if now >= next_heartbeat:
                next_heartbeat = now + self.interval
                for worker, (_, expiry) in list(self.workers.items()):
                    if expiry <= now:
                        self.forget(worker)
                    else:
                        self.socket.send_multipart([worker, b"MDPW02", b"\x05"])
        self.socket.close(linger=0)
        self.context.term()

    def on_request(self, client: bytes, service: bytes, body: list[bytes]) -> None:
        self.requests.setdefault(service, deque()).append((client, body))
        self.dispatch(service)

    def on_worker(self, worker: bytes, command: bytes, rest: list[bytes]) -> None:
        known = self.workers.get(worker)
        if command == b"\x01" and known is None and rest:
            self.workers[worker] = (rest[0], time.monotonic() + LIVENESS * self.interval)
            self.idle.setdefault(rest[0], deque()).append(worker)
            self.dispatch(rest[0])
            return
        if command == b"\x06":
            if known is not None:
                self.forget(worker)
            return
        if known is None or command == b"\x01":
            # A valid but unexpected command: DISCONNECT, and nothing more.
            self.socket.send_multipart([worker, b"MDPW02", b"\x06"])
            if known is not None:
                self.forget(worker)
            return
        service, _ = known
        self.workers[worker] = (service, time.monotonic() + LIVENESS * self.interval)
        if command in (b"\x03", b"\x04") and len(rest) >= 2 and rest[1] == b"":
            client, body = rest[0], rest[2:]
            reply = b"\x02" if command == b"\x03" else b"\x03"
            self.socket.send_multipart([client, b"MDPC02", reply, service, *body])
            if command == b"\x04":
                self.idle.setdefault(service, deque()).append(worker)
                self.dispatch(service)

    def dispatch(self, service: bytes) -> None:
        idle, waiting = self.idle.get(service), self.requests.get(service)
        while idle and waiting:
            worker = idle.popleft()
            client, body = waiting.popleft()
            self.socket.send_multipart([worker, b"MDPW02", b"\x02", client, b"", *body])

    def forget(self, worker: bytes) -> None:
        service, _ = self.workers.pop(worker)
        idle = self.idle.get(service)
        if idle is not None and worker in idle:
            idle.remove(worker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Majordomo peers from the RFCs.")
    parser.add_argument("role", choices=["worker", "broker"])
    parser.add_argument("rest", nargs="+")
    parser.add_argument("--heartbeat-interval", type=float, default=GUIDE_HEARTBEAT)
    args = parser.parse_args(argv)
    peer: Worker | Broker
    if args.role == "worker":
        version, address, service = args.rest
        peer = Worker(version, address, service.encode(), args.heartbeat_interval)
    else:
        peer = Broker(args.rest[0], args.heartbeat_interval)
        print(f"listening on {peer.address}", flush=True)

    def stop(*_: object) -> None:
        peer.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    peer.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
