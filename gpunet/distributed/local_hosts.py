"""Two "machines" on this one, for tests and benchmarks of ranks on several hosts.

Each host is a network namespace of its own, joined to the other by a veth pair
(10.224.0.1 and .2); the proxies that MPICH's mpiexec (Hydra) starts there, and
their ranks, also get a UTS, IPC and PID namespace of their own, so that MPI
takes them for two machines and reduces between them over TCP, not shared
memory. Hydra launches a remote proxy with ``SCRIPT -x HOST COMMAND``
(``-launcher ssh -launcher-exec SCRIPT``): the script here runs it in that
host's namespaces instead, no ssh involved; mpiexec itself runs in the first
host's network namespace (``LocalHosts.mpiexec``). Needs root, ``ip``
(iproute2) and ``unshare`` (util-linux); ``unavailable`` says why not.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from .launch import mpiexec_path

PREFIX = "gpunet-"        # every namespace made here: gpunet-<creator pid>-<token>-<a|b>
ADDRESSES = ("10.224.0.1/24", "10.224.0.2/24")
UP_S = 5.0                # how long to wait for both ends of the link to be UP
COMMAND_S = 10.0          # the longest an `ip` command may take
LAUNCHER = """#!/bin/sh
# Hydra's stand-in for ssh: SCRIPT -x HOST COMMAND runs COMMAND in HOST's namespaces.
[ "$1" = -x ] && shift
host=$1; shift
exec ip netns exec "$host" unshare --uts --ipc --pid --fork --kill-child --mount-proc \\
    sh -c 'hostname "$0" && exec sh -c "$1"' "$host" "$*"
"""


class LocalHostsError(RuntimeError):
    """The two hosts cannot be made here (one line: why)."""


class LocalHosts:
    """Two hosts (``names``), made on entering, and everything of theirs ended
    and removed on leaving, also after a failure, partly made ones included.
    Names are unique per process and call, so that test workers running side by
    side do not collide; namespaces left by a process that no longer runs
    (killed before it could clean up) are removed when the next one is made."""

    def __init__(self) -> None:
        pid, token = os.getpid(), secrets.token_hex(3)
        self.names = (f"{PREFIX}{pid}-{token}-a", f"{PREFIX}{pid}-{token}-b")
        self.veths = (f"g{pid:x}-{token}a", f"g{pid:x}-{token}b")  # at most 15 characters
        self.addresses = tuple(address.split("/")[0] for address in ADDRESSES)
        self.folder: Path | None = None

    @property
    def hostfile(self) -> Path:
        """The hostfile naming both hosts, for ``mpiexec -f`` (``-ppn`` sets ranks per host)."""
        return self._file("hosts")

    @property
    def launcher(self) -> Path:
        """The script Hydra calls instead of ssh."""
        return self._file("launcher")

    def _file(self, name: str) -> Path:
        if self.folder is None:
            raise LocalHostsError("the hosts are not made yet: use LocalHosts as a context manager")
        return self.folder / name

    def __enter__(self) -> LocalHosts:
        remove_abandoned()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _make(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gpunet-hosts-"))
        self.hostfile.write_text("".join(f"{name}\n" for name in self.names))
        self.launcher.write_text(LAUNCHER)
        self.launcher.chmod(0o755)
        for name in self.names:
            _ip("netns", "add", name)
        _ip("link", "add", self.veths[0], "type", "veth", "peer", "name", self.veths[1])
        for name, veth, address in zip(self.names, self.veths, ADDRESSES):
            _ip("link", "set", veth, "netns", name)
            _ip("-n", name, "addr", "add", address, "dev", veth)
            _ip("-n", name, "link", "set", "lo", "up")
        self.set_link(up=True)

    def close(self) -> None:
        """End every process in the hosts (SIGKILL), remove them and their files."""
        for name in self.names:
            _remove(name)
        subprocess.run(["ip", "link", "delete", self.veths[0]], capture_output=True,
                       timeout=COMMAND_S, stdin=subprocess.DEVNULL)  # if still here, not moved
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def mpiexec(self, *args: str) -> list[str]:
        """The command line of mpiexec ``args`` launching on both hosts, run from the
        first host's network namespace (pass ``-ppn N -n M``)."""
        found = mpiexec_path()
        if found is None:
            raise LocalHostsError("no mpiexec beside Python or on PATH: pip install 'gpunet[mpi]'")
        return ["ip", "netns", "exec", self.names[0], found, "-f", str(self.hostfile),
                "-launcher", "ssh", "-launcher-exec", str(self.launcher),
                "-iface", self.veths[0], *args]

    def carried(self) -> int:
        """The bytes the link has carried so far, both ways."""
        stats = _link(self.names[0], self.veths[0], "-s")["stats64"]
        return stats["rx"]["bytes"] + stats["tx"]["bytes"]

    def set_link(self, up: bool) -> None:
        """Take the link up (waiting until both ends are UP) or down: a partition."""
        for name, veth in zip(self.names, self.veths):
            _ip("-n", name, "link", "set", veth, "up" if up else "down")
        deadline = time.monotonic() + UP_S
        while up and not all(_link(name, veth)["operstate"] == "UP"
                             for name, veth in zip(self.names, self.veths)):
            if time.monotonic() > deadline:
                raise LocalHostsError(f"the link {self.veths[0]} was not UP after {UP_S:.0f} s")
            time.sleep(0.01)

    def processes(self, host: int) -> list[int]:
        """The live processes on host ``host`` (0 or 1): on host 0 mpiexec too."""
        return _pids(self.names[host])

    def ranks(self, host: int) -> list[int]:
        """The processes that Hydra's proxy started on host ``host`` (0 or 1)."""
        return [pid for pid in self.processes(host) if _parent_command(pid) == "hydra_pmi_proxy"]


def unavailable() -> str | None:
    """Why two hosts cannot be made here, in one line, or None (it makes and removes a pair)."""
    missing = [tool for tool in ("ip", "unshare") if shutil.which(tool) is None]
    if missing:
        return f"no {' or '.join(missing)} command here (iproute2, util-linux) to make namespaces"
    if os.geteuid() != 0:
        return "not root: network namespaces and veth pairs need root"
    probe = subprocess.run(["unshare", "--net", "--uts", "--ipc", "--pid", "--fork",
                            "--mount-proc", "true"], capture_output=True, text=True,
                           timeout=COMMAND_S, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        return f"namespaces refused: {_last_line(probe.stderr)}"
    try:
        with LocalHosts():
            return None
    except LocalHostsError as exc:
        return str(exc)


def remove_abandoned() -> None:
    """Remove the hosts of processes that no longer run."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            timeout=COMMAND_S, stdin=subprocess.DEVNULL).stdout
    for name in (line.split()[0] for line in listed.splitlines() if line.startswith(PREFIX)):
        creator = name[len(PREFIX):].split("-")[0]
        if creator.isdigit() and not Path(f"/proc/{creator}").exists():
            _remove(name)


def _remove(name: str) -> None:
    """SIGKILL every process in namespace ``name``, wait for them to end, delete it."""
    deadline = time.monotonic() + COMMAND_S
    while (pids := _pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=COMMAND_S,
                   stdin=subprocess.DEVNULL)


def _pids(name: str) -> list[int]:
    """The live processes in network namespace ``name`` (none if there is no such namespace)."""
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                            timeout=COMMAND_S, stdin=subprocess.DEVNULL).stdout
    return [int(pid) for pid in listed.split() if _state(int(pid)) not in ("Z", "")]


def _state(pid: int) -> str:
    """The state letter of ``pid`` ("Z" a zombie), "" where it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _parent_command(pid: int) -> str:
    try:
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        return Path(f"/proc/{parent}/comm").read_text().strip()
    except (OSError, IndexError):
        return ""


def _link(namespace: str, veth: str, *options: str) -> dict:
    return json.loads(_ip("-j", *options, "-n", namespace, "link", "show", "dev", veth))[0]


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_S,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise LocalHostsError(f"ip {' '.join(args)} failed: {_last_line(done.stderr)}")
    return done.stdout


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
