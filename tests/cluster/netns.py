"""A cluster of hosts on one machine: Linux network namespaces joined by a bridge.

`Cluster` makes a *switch* namespace holding a bridge, and one namespace per
host, each with its own non-loopback address on a private subnet, cabled to
the bridge by a veth pair. The namespaces are the test's own: nothing is
routed out of them, so no traffic ever leaves the cluster. Processes run in a
host with `Host.spawn` (``ip netns exec``); `Host.kill` kills every process of
the host at once (a machine that loses power); `Host.cut` takes its cable
down and `Host.restore` puts it back (a network partition). On exit every
process is killed and every namespace removed.

A process can also run in a mount namespace of its own where directories are
covered by an empty tmpfs (``Host.spawn(..., hide=[DIR])``): a machine that
does not hold those files, while the rest of the file system (Python, the
code) is shared.

`why_not()` says why a cluster cannot be made here (not root, no ``ip``, no
namespaces), and `why_not_hide()` why directories cannot be hidden, for the
tests to skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

__all__ = ("Cluster", "Host", "why_not", "why_not_hide")


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")


def why_not() -> str | None:
    """Return why network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    name = f"bgprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
    except RuntimeError as exc:
        return f"network namespaces cannot be made here: {exc}"
    with contextlib.suppress(RuntimeError):
        _ip("netns", "del", name)
    return None


def why_not_hide() -> str | None:
    """Return why a process cannot get a mount namespace hiding a directory, or None."""
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    if os.geteuid() != 0:
        return "making mount namespaces needs root"
    probe = [
        *("unshare", "--mount", "--propagation", "private", "sh", "-c"),
        'mount -t tmpfs -o size=64k none "$1" && ! test -e "$1/bin"',
        *("sh", "/usr"),
    ]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode:
        return f"a mount namespace cannot hide a directory here: {result.stderr.strip()}"
    return None


class Host:
    """One host of a `Cluster`: a network namespace with one address."""

    def __init__(self, cluster: Cluster, name: str, address: str, netns: str, veth: str):
        self.cluster = cluster
        self.name = name
        #: The host's address on the cluster's subnet.
        self.address = address
        self.netns = netns
        self._veth = veth  # the switch's end of the host's cable
        self.processes: list[subprocess.Popen[bytes]] = []

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address}>"

    def command(
        self, argv: Sequence[str], *, unshare_mount: bool = False, hide: Sequence[str] = ()
    ) -> list[str]:
        """Return `argv` as run inside this host (and a mount namespace of its own).

        Every directory in `hide` is covered, for `argv` alone, by an empty
        tmpfs mounted in a private mount namespace (implies `unshare_mount`):
        a machine whose file system does not hold those files.
        """
        prefix = ["ip", "netns", "exec", self.netns]
        if unshare_mount or hide:
            prefix += ["unshare", "--mount", "--propagation", "private"]
        if hide:
            # sh mounts over each directory, then becomes argv: the mounts
            # live and die with this mount namespace, nobody else sees them.
            mounts = "".join(
                f'mount -t tmpfs -o size=64k,mode=0555 none "${i + 1}" && '
                for i in range(len(hide))
            )
            script = f'{mounts}shift {len(hide)} && exec "$@"'
            prefix += ["sh", "-c", script, "sh", *hide]
        return [*prefix, *argv]

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        unshare_mount: bool = False,
        hide: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on this host (see `command`); it is killed with the host or the cluster."""
        proc = subprocess.Popen(
            self.command(argv, unshare_mount=unshare_mount, hide=hide),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Return every process running in this host's network namespace."""
        result = subprocess.run(
            ["ip", "netns", "pids", self.netns],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return [int(p) for p in result.stdout.split()]

    def kill(self) -> None:
        """Kill every process of the host at once, as a power cut would."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.processes:
            proc.wait()

    def cut(self) -> None:
        """Take the host's cable down: nothing reaches it, nothing leaves it."""
        _ip("link", "set", self._veth, "down", netns=self.cluster.switch)

    def restore(self) -> None:
        """Put the host's cable back."""
        _ip("link", "set", self._veth, "up", netns=self.cluster.switch)


class Cluster:
    """Hosts on a private subnet behind one bridge (see the module docstring).

    Use it as a context manager; `add` makes a host.
    """

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self._tag = tag
        self.switch = f"bg{tag}sw"
        # A subnet of 10.0.0.0/8 picked at random: two clusters at once (tests
        # run in parallel on one machine) do not share one, and nothing is
        # routed out of the namespaces anyway.
        self._subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> Cluster:
        _ip("netns", "add", self.switch)
        try:
            _ip("link", "add", "br0", "type", "bridge", netns=self.switch)
            _ip("link", "set", "br0", "up", netns=self.switch)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for host in self.hosts.values():
            host.kill()
            for proc in host.processes:
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
        for netns in [h.netns for h in self.hosts.values()] + [self.switch]:
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", netns)

    def add(self, name: str) -> Host:
        """Make a host called `name` with the next address of the subnet."""
        number = len(self.hosts) + 1
        netns = f"bg{self._tag}h{number}"
        inside, outside = f"bg{self._tag}a{number}", f"bg{self._tag}b{number}"
        address = f"{self._subnet}.{number}"
        _ip("netns", "add", netns)
        host = Host(self, name, address, netns, outside)
        self.hosts[name] = host
        # The cable is made in the switch, then one end is moved into the host.
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside, netns=self.switch)
        _ip("link", "set", inside, "netns", netns, netns=self.switch)
        _ip("link", "set", outside, "master", "br0", netns=self.switch)
        _ip("link", "set", outside, "up", netns=self.switch)
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{address}/24", "dev", inside, netns=netns)
        _ip("link", "set", inside, "up", netns=netns)
        return host

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())
