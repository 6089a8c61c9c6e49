"""How one broker scales: the sans-IO broker machine under a simulated cluster.

The broker's rules live in `binglide.core.BrokerMachine`, which knows nothing
of sockets or clocks, so it can be driven by simulated peers on a virtual
clock, at a scale no single machine can host: a thousand workers over twenty
services, hundreds of clients, a million tasks, with sub-requests,
cancellations and worker deaths. The peers are the real sans-IO client and
worker machines (`ClientMachine`, `WorkerMachine`); messages travel as real
frames (`binglide.core.encode`/`decode`), and the broker takes them through
`binglide.broker.turn`, the step both of its real loops take, decoded and
encoded as the ZeroMQ broker does (`router_incoming`, `router_outgoing`), so
what is measured is the broker's own work per message: decoding, its rules,
its timers and encoding what it sends.

The model:

- services ``s00``.. ; the first quarter are *aggregators*, whose tasks issue
  `--fanout` sub-requests to random *leaf* services, wait for them (WAITING),
  then compute briefly; leaf tasks compute for an exponential time of mean
  `--task-ms`. A worker computes one thing at a time (its tasks queue for its
  one core, as a real worker's threads share a core);
- every client keeps `--depth` jobs in flight (equal demand), each a request
  to a random service; `--cancel` of the jobs are cancelled at a random moment
  of their expected life;
- each worker dies silently once per `--mtbf` virtual seconds on average (it
  stops answering and sending; the broker finds out by its heartbeats) and
  comes back `--restart` seconds later under a new identity;
- each hop takes `--latency` virtual seconds; the broker handles every message
  that reached it by the same `--tick` as one batch (one `turn`), as a busy
  broker drains its socket.

Reported per scale: the broker's CPU per task (wall time inside `turn` and
the encoding of what it sends, per task that ended), its peak memory (a
second, shorter run under tracemalloc: what the broker machine's own code
allocated, sampled), fairness between clients (Jain's index of their
throughput, 1.0 = equal), and the longest any task waited in the broker's
queue (from the broker receiving it to a worker receiving it; also without
the tasks that a dead worker held, which wait for its heartbeats to lapse).

Run (about 10 minutes for the default series)::

    python bench/simulate.py                       # 10 .. 1000 workers
    python bench/simulate.py --workers 1000 --tasks 1000000
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import attrs
from common import command_line, machine, publish, table

from binglide.broker import turn
from binglide.core import (
    BrokerConfig,
    BrokerMachine,
    ClientMachine,
    Final,
    IdSource,
    Message,
    Protocol,
    Reply,
    Request,
    TaskCancelled,
    TaskStarted,
    WorkerLost,
    WorkerMachine,
    decode,
    encode,
)
from binglide.transports.zeromq import router_incoming, router_outgoing

if TYPE_CHECKING:
    from collections.abc import Callable

    from binglide.core import Frame, Outgoing


@attrs.frozen
class Scale:
    """One simulated cluster."""

    workers: int
    services: int
    clients: int
    tasks: int


@attrs.frozen
class Model:
    """How the simulated peers behave (virtual seconds)."""

    task_time: float = 0.010
    aggregate_time: float = 0.001
    fanout: int = 4
    depth: int = 8
    cancel: float = 0.02
    mtbf: float = 1000.0
    restart: float = 2.0
    latency: float = 0.0001
    tick: float = 0.00005
    heartbeat: float = 1.0
    #: Virtual seconds after the last job is sent before the open ones count as lost.
    grace: float = 120.0


@attrs.define
class Result:
    """What one run measured."""

    scale: Scale
    tasks: int = 0
    broker_seconds: float = 0.0
    messages: int = 0
    virtual_seconds: float = 0.0
    wall_seconds: float = 0.0
    jain: float = 0.0
    max_wait: float = 0.0
    max_wait_alive: float = 0.0
    p999_wait: float = 0.0
    deaths: int = 0
    failed: int = 0
    lost: int = 0
    requeued: int = 0
    cancelled: int = 0
    overflows: int = 0
    peak_bytes: int | None = None

    @property
    def us_per_task(self) -> float:
        return self.broker_seconds / max(self.tasks, 1) * 1e6


@attrs.define
class _Task:
    """A task a simulated worker holds."""

    tid: int
    job: str
    ancestry: tuple[str, ...]
    subs: set[int] = attrs.Factory(set)


@attrs.define(eq=False)
class _Worker:
    peer: str
    service: str
    aggregator: bool
    machine: WorkerMachine
    client: ClientMachine
    alive: bool = True
    busy_until: float = 0.0
    tasks: dict[int, _Task] = attrs.Factory(dict)
    parent_of: dict[int, int] = attrs.Factory(dict)  # sub-request rid -> tid


@attrs.define(eq=False)
class _Client:
    peer: str
    machine: ClientMachine
    open: dict[int, float] = attrs.Factory(dict)  # rid -> sent at
    done: int = 0


class Simulation:
    """A cluster of simulated peers around one real broker machine."""

    def __init__(self, scale: Scale, model: Model, *, seed: int = 1) -> None:
        self.scale = scale
        self.model = model
        self.rng = random.Random(seed)
        config = BrokerConfig(heartbeat_interval=model.heartbeat, liveness=3)
        self.broker = BrokerMachine(config, ids=IdSource(1), instance="sim")
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._inbox: list[tuple[str, list[Frame]]] = []
        self._inbox_due: float | None = None
        self._broker_timer: float | None = None
        self.services = [f"s{i:02d}" for i in range(scale.services)]
        n_agg = max(1, scale.services // 4) if scale.services > 1 else 0
        self.aggregators = set(self.services[:n_agg])
        self.leaves = self.services[n_agg:]
        self.workers: dict[str, _Worker] = {}
        self.clients: list[_Client] = []
        self._peer_ids = itertools.count()
        self.result = Result(scale)
        self._arrived: dict[bytes, float] = {}  # payload -> when the broker first got it
        self._orphaned: set[bytes] = set()  # payloads a dead worker held
        self._dead: set[str] = set()  # peers of the workers that died
        self._waits: list[float] = []
        self._submitted = 0
        self._open_jobs = 0
        self._all_sent_at: float | None = None
        self._budget_jobs = self._jobs_for(scale.tasks)

    def _jobs_for(self, tasks: int) -> int:
        # A job to an aggregator is 1 + fanout tasks, to a leaf 1.
        share = len(self.aggregators) / len(self.services)
        per_job = share * (1 + self.model.fanout) + (1 - share)
        return max(1, int(tasks / per_job))

    # -- the event loop -------------------------------------------------------

    def at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), fn))

    def run(self, *, sample_memory: Callable[[], None] | None = None) -> Result:
        m = self.model
        for i, service in enumerate(
            itertools.islice(itertools.cycle(self.services), self.scale.workers)
        ):
            self._start_worker(service, delay=i * 1e-6)
        for i in range(self.scale.clients):
            client = _Client(f"c{i}", ClientMachine(heartbeat_interval=m.heartbeat))
            self.clients.append(client)
            self.at(0.01 + i * 1e-6, lambda c=client: self._fill(c))
            self.at(0.01 + i * 1e-6, lambda c=client: self._client_timer(c))
        self.at(self._next_death(), self._kill_one)
        started = time.perf_counter()
        samples = 0
        while self._events:
            when, _, fn = heapq.heappop(self._events)
            self.now = when
            fn()
            if sample_memory is not None and self._submitted // 5_000 > samples:
                samples = self._submitted // 5_000
                sample_memory()
            if self._submitted >= self._budget_jobs:
                if not self._open_jobs:
                    break
                if self._all_sent_at is None:
                    self._all_sent_at = self.now
                elif self.now > self._all_sent_at + self.model.grace:
                    break  # what is still open now was lost
        self.result.lost = self._open_jobs
        self.result.wall_seconds = time.perf_counter() - started
        self.result.virtual_seconds = self.now
        stats = self.broker.statistics()
        r = self.result
        r.tasks = stats.completed + stats.failed + stats.cancelled
        r.requeued, r.cancelled, r.overflows = stats.requeued, stats.cancelled, stats.overflows
        done = [c.done / self.now for c in self.clients]
        r.jain = sum(done) ** 2 / (len(done) * sum(x * x for x in done)) if any(done) else 0.0
        waits = sorted(self._waits)
        if waits:
            r.p999_wait = waits[min(len(waits) - 1, int(len(waits) * 0.999))]
        return r

    # -- the broker -------------------------------------------------------------

    def _to_broker(self, peer: str, protocol: Protocol, msg: Message) -> None:
        frames = encode(msg, protocol=protocol, from_broker=False)
        arrive = self.now + self.model.latency
        due = (arrive // self.model.tick + 1) * self.model.tick
        self._inbox.append((peer, frames))
        if self._inbox_due is None:
            self._inbox_due = due
            self.at(due, self._broker_turn)

    def _broker_turn(self) -> None:
        batch, self._inbox, self._inbox_due = self._inbox, [], None
        for _, frames in batch:
            if frames[1] in (b"\x01", b"\x11") and frames[0] == b"MDPC02":
                payload = bytes(frames[-1])
                self._arrived.setdefault(payload, self.now)
        # The thread's CPU time, not the wall clock: other processes on the
        # machine preempting this one must not count as the broker's work.
        t0 = time.thread_time()
        received = [
            item
            for peer, frames in batch
            if (item := router_incoming([peer.encode("latin-1"), *frames])) is not None
        ]
        outgoing, deadline = turn(self.broker, received, self.now)
        sent = [(out, router_outgoing(out)[1:]) for out in outgoing]
        self.result.broker_seconds += time.thread_time() - t0
        self.result.messages += len(batch)
        for out, frames in sent:
            self._deliver(out, frames)
        self._arm_broker_timer(deadline)

    def _arm_broker_timer(self, deadline: float | None) -> None:
        if deadline is None or (self._broker_timer is not None and self._broker_timer <= deadline):
            return
        self._broker_timer = deadline

        def fire() -> None:
            if self._broker_timer != deadline:
                return  # superseded by an earlier one
            self._broker_timer = None
            self._broker_turn()

        self.at(max(deadline, self.now), fire)

    def _deliver(self, out: Outgoing, frames: list[Frame]) -> None:
        peer = out.peer
        when = self.now + self.model.latency
        _, msg = decode(frames, from_broker=True)
        worker = self.workers.get(peer)
        if worker is None and peer in self._dead and isinstance(msg, Request) and msg.payload:
            # Sent to a worker the broker does not know is dead yet: it waits
            # for the heartbeats to lapse, as the tasks the dead one held do.
            self._orphaned.add(bytes(msg.payload[-1]))
        if worker is not None:
            if out.protocol is Protocol.WORKER:
                self.at(when, lambda: self._worker_gets(worker, msg))
            else:
                self.at(when, lambda: self._worker_reply(worker, msg))
            return
        client = self._client_of(peer)
        if client is not None:
            self.at(when, lambda: self._client_gets(client, msg))

    def _client_of(self, peer: str) -> _Client | None:
        index = int(peer[1:]) if peer.startswith("c") else -1
        return self.clients[index] if 0 <= index < len(self.clients) else None

    # -- clients ----------------------------------------------------------------

    def _fill(self, client: _Client) -> None:
        m = self.model
        while len(client.open) < m.depth and self._submitted < self._budget_jobs:
            self._submitted += 1
            service = self.rng.choice(self.services)
            payload = b"%s:%d" % (client.peer.encode(), self._submitted)
            rid = client.machine.request(service, (payload,))
            client.open[rid] = self.now
            self._open_jobs += 1
            if self.rng.random() < m.cancel:
                life = m.task_time * (2 + m.fanout)
                self.at(
                    self.now + self.rng.uniform(0, life), lambda r=rid: self._cancel(client, r)
                )
        self._flush_client(client)

    def _cancel(self, client: _Client, rid: int) -> None:
        if client.open.pop(rid, None) is not None and client.machine.cancel(rid):
            self._open_jobs -= 1
            self._flush_client(client)
            self._fill(client)

    def _client_gets(self, client: _Client, msg: Message) -> None:
        reply = client.machine.receive(msg, self.now)
        if isinstance(reply, Reply) and reply.last:
            if client.open.pop(reply.rid, None) is not None:
                self._open_jobs -= 1
                if isinstance(reply.message, Final):
                    client.done += 1
                else:
                    self.result.failed += 1
            self._fill(client)

    def _flush_client(self, client: _Client) -> None:
        for msg in client.machine.outgoing():
            self._to_broker(client.peer, Protocol.CLIENT, msg)

    def _client_timer(self, client: _Client) -> None:
        # One chain of timer events per client: each fire schedules the next.
        deadline = client.machine.next_deadline()
        if deadline is not None and deadline <= self.now:
            client.machine.handle_timer(self.now)
            self._flush_client(client)
            deadline = client.machine.next_deadline()
        if deadline is not None and (client.open or self._submitted < self._budget_jobs):
            self.at(max(deadline, self.now + 1e-6), lambda: self._client_timer(client))

    # -- workers ----------------------------------------------------------------

    def _start_worker(self, service: str, *, delay: float = 0.0) -> None:
        m = self.model
        peer = f"w{next(self._peer_ids)}"
        worker = _Worker(
            peer,
            service,
            service in self.aggregators,
            WorkerMachine(service, heartbeat_interval=m.heartbeat),
            ClientMachine(ids=IdSource(1)),
        )
        self.workers[peer] = worker
        self.at(self.now + delay, lambda: self._worker_flush(worker))
        self.at(self.now + delay, lambda: self._worker_timer(worker))

    def _worker_flush(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        for msg in worker.machine.outgoing():
            self._to_broker(worker.peer, Protocol.WORKER, msg)
        for msg in worker.client.outgoing():
            self._to_broker(worker.peer, Protocol.CLIENT, msg)

    def _worker_timer(self, worker: _Worker) -> None:
        # One chain of timer events per worker: each fire schedules the next.
        if not worker.alive:
            return
        deadline = worker.machine.next_deadline()
        if deadline is not None and deadline <= self.now:
            if isinstance(worker.machine.handle_timer(self.now), WorkerLost):
                worker.tasks.clear()
            self._worker_flush(worker)
            deadline = worker.machine.next_deadline()
        if deadline is not None:
            self.at(max(deadline, self.now + 1e-6), lambda: self._worker_timer(worker))

    def _kill_one(self) -> None:
        alive = [w for w in self.workers.values() if w.alive]
        if alive and self._submitted < self._budget_jobs:
            victim = self.rng.choice(alive)
            victim.alive = False
            self._dead.add(victim.peer)
            self.result.deaths += 1
            for task in victim.tasks.values():
                self._orphaned.add(task.ancestry[-1].encode())
            del self.workers[victim.peer]
            self.at(self.now + self.model.restart, lambda s=victim.service: self._start_worker(s))
        if self._submitted < self._budget_jobs:
            self.at(self._next_death(), self._kill_one)

    def _next_death(self) -> float:
        # Deaths of W workers of one MTBF each: a Poisson process of rate W / MTBF.
        return self.now + self.rng.expovariate(self.scale.workers / self.model.mtbf)

    def _compute(self, worker: _Worker, seconds: float, then: Callable[[], None]) -> None:
        start = max(self.now, worker.busy_until)
        worker.busy_until = start + seconds
        self.at(worker.busy_until, then)

    def _worker_gets(self, worker: _Worker, msg: Message) -> None:
        if not worker.alive:
            if isinstance(msg, Request) and msg.payload:
                # Sent to a worker that died on the way: it waits for the
                # broker to find out, as the tasks the dead one held do.
                self._orphaned.add(bytes(msg.payload[-1]))
            return
        for event in worker.machine.receive(msg, self.now):
            if isinstance(event, TaskStarted):
                self._start_task(worker, event)
            elif isinstance(event, TaskCancelled):
                task = worker.tasks.pop(event.tid, None)
                if task is not None:
                    for rid in task.subs:
                        worker.parent_of.pop(rid, None)
                        worker.client.cancel(rid)
            elif isinstance(event, WorkerLost):
                worker.tasks.clear()
        self._worker_flush(worker)

    def _start_task(self, worker: _Worker, event: TaskStarted) -> None:
        payload = bytes(event.payload[-1]) if event.payload else b""
        arrived = self._arrived.pop(payload, None)
        if arrived is not None:
            wait = self.now - arrived - self.model.latency
            self._waits.append(wait)
            self.result.max_wait = max(self.result.max_wait, wait)
            if payload not in self._orphaned:
                self.result.max_wait_alive = max(self.result.max_wait_alive, wait)
        task = _Task(event.tid, event.job, event.ancestry)
        worker.tasks[event.tid] = task
        m = self.model
        if worker.aggregator:
            for i in range(m.fanout):
                sub_payload = b"%s/%d.%d" % (payload, event.tid, i)
                rid = worker.client.request(
                    self.rng.choice(self.leaves),
                    (sub_payload,),
                    job=event.job,
                    ancestry=event.ancestry,
                    parent=event.tid,
                )
                task.subs.add(rid)
                worker.parent_of[rid] = event.tid
            worker.machine.waiting(event.tid, True)
        else:
            duration = self.rng.expovariate(1 / m.task_time)
            self._compute(worker, duration, lambda: self._finish(worker, event.tid))

    def _worker_reply(self, worker: _Worker, msg: Message) -> None:
        if not worker.alive:
            return
        reply = worker.client.receive(msg, self.now)
        if not isinstance(reply, Reply) or not reply.last:
            return
        tid = worker.parent_of.pop(reply.rid, None)
        task = worker.tasks.get(tid) if tid is not None else None
        if task is None:
            return
        task.subs.discard(reply.rid)
        if not task.subs:
            worker.machine.waiting(task.tid, False)
            self._worker_flush(worker)
            self._compute(
                worker, self.model.aggregate_time, lambda: self._finish(worker, task.tid)
            )

    def _finish(self, worker: _Worker, tid: int) -> None:
        if not worker.alive or worker.tasks.pop(tid, None) is None:
            return
        worker.machine.report(tid, (b"done",), final=True)
        self._worker_flush(worker)


def simulate(scale: Scale, model: Model, *, seed: int = 1) -> Result:
    """Run one simulated cluster; return its figures (CPU and fairness)."""
    return Simulation(scale, model, seed=seed).run()


def peak_memory(scale: Scale, model: Model, *, tasks: int, seed: int = 1) -> int:
    """Return the peak bytes the broker machine's own code held, over a shorter run."""
    sim = Simulation(attrs.evolve(scale, tasks=tasks), model, seed=seed)
    peak = 0
    broker_files = [
        tracemalloc.Filter(True, "*/binglide/core/broker.py"),
        tracemalloc.Filter(True, "*/binglide/core/ids.py"),
    ]

    def sample() -> None:
        nonlocal peak
        snapshot = tracemalloc.take_snapshot().filter_traces(broker_files)
        peak = max(peak, sum(stat.size for stat in snapshot.statistics("filename")))

    tracemalloc.start(1)
    try:
        sim.run(sample_memory=sample)
        sample()
    finally:
        tracemalloc.stop()
    return peak


def scales(workers: list[int], tasks: int) -> list[Scale]:
    return [
        Scale(workers=w, services=min(20, w), clients=max(4, w // 5), tasks=tasks) for w in workers
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[10, 30, 100, 300, 1000])
    parser.add_argument("--tasks", type=int, default=200_000, help="tasks per scale")
    parser.add_argument(
        "--memory-tasks",
        type=int,
        default=60_000,
        help="tasks of the shorter tracemalloc run (0: skip)",
    )
    parser.add_argument("--task-ms", type=float, default=10.0)
    parser.add_argument("--fanout", type=int, default=4)
    parser.add_argument("--depth", type=int, default=8, help="jobs in flight per client")
    parser.add_argument("--cancel", type=float, default=0.02)
    parser.add_argument(
        "--mtbf", type=float, default=1000.0, help="virtual seconds between a worker's deaths"
    )
    parser.add_argument("--restart", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="also write the figures to this file")
    args = parser.parse_args()
    model = Model(
        task_time=args.task_ms / 1000,
        fanout=args.fanout,
        depth=args.depth,
        cancel=args.cancel,
        mtbf=args.mtbf,
        restart=args.restart,
    )
    rows: list[list[Any]] = []
    for scale in scales(args.workers, args.tasks):
        r = simulate(scale, model, seed=args.seed)
        if args.memory_tasks:
            r.peak_bytes = peak_memory(scale, model, tasks=args.memory_tasks, seed=args.seed)
        rows.append(
            [
                str(scale.workers),
                str(scale.services),
                str(scale.clients),
                f"{r.tasks:,}",
                f"{r.us_per_task:.1f}",
                f"{r.broker_seconds / max(r.messages, 1) * 1e6:.1f}",
                "-" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:,.1f}",
                f"{r.jain:.3f}",
                f"{r.max_wait * 1000:.0f}",
                f"{r.max_wait_alive * 1000:.0f}",
                f"{r.p999_wait * 1000:.1f}",
                f"{r.deaths}/{r.requeued}/{r.cancelled}/{r.overflows}",
                f"{r.failed}/{r.lost}",
                f"{r.virtual_seconds:.1f}",
                f"{r.wall_seconds:.0f}",
            ]
        )
        print(f"done: {scale}", flush=True)
    header = [
        "workers",
        "services",
        "clients",
        "tasks",
        "broker us/task",
        "us/msg",
        "peak MiB",
        "Jain",
        "max wait ms",
        "max wait ms (live)",
        "p99.9 wait ms",
        "deaths/requeued/cancelled/overflows",
        "jobs failed/lost",
        "virtual s",
        "wall s",
    ]
    first, last = rows[0], rows[-1]
    growth = float(last[4]) / float(first[4])
    text = "\n".join(
        [
            f"Command: `{command_line()}`",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()),
            "",
            f"Model: {model}",
            "",
            table(header, rows),
            "",
            f"broker CPU per task, {first[0]} -> {last[0]} workers: x{growth:.2f}",
        ]
    )
    publish(text, args.out)


if __name__ == "__main__":
    main()
