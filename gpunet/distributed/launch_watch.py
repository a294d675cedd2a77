"""What ``gpunet train --nproc`` sees of the ranks it launched: mpiexec's output,
passed on, and each rank's end (its pidfd), so that it can say which rank ended
a run without a word and leave no rank running once mpiexec has ended."""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

GONE_S = 5.0  # how long the launch waits, once mpiexec has ended, for its ranks to be gone


class LaunchWatch:
    """What ``launch`` sees of its ranks: mpiexec's standard output and error,
    passed on as they come, whether a gpunet error line was in the error
    (``said``), and the rank whose end ended the run (``first``); the ranks, by
    the process id each writes into ``folder`` as it joins, in the order they end
    (``ended``, through pidfds, where Linux has them). Once mpiexec has ended, a
    rank still running GONE_S later (one stopped, which a signal other than
    SIGKILL leaves stopped) is killed, so no rank outlives its launch."""

    MARK = b"gpunet: error:"
    # MPICH's mpiexec names the lowest rank whose end it recorded as a kill ("BAD
    # TERMINATION ... PID 1234 RUNNING AT host": hydra's pmiserv_cb.c, the first of
    # the proxy's processes not WIFEXITED); asked (launch.EXIT_CODES_OPTION), it
    # also ends with every rank's wait status, "[mpiexec@host] Exit codes: [host]
    # 0,9", a line read here and not passed on. The ranks it kills after the first
    # are mostly recorded as exits, but not always (seen under load: "9,9", rank 0
    # named where rank 1 was killed); and the ranks' pidfds may say another ended
    # first, since a killed rank can take longer to finish exiting than the ranks
    # mpiexec then kills.
    FAILED_PID = re.compile(rb"^=\s+PID (\d+) RUNNING AT ", re.MULTILINE)
    EXIT_CODES = re.compile(rb"^\[mpiexec@[^\]\n]*\] Exit codes: ([^\n]*)\n", re.MULTILINE)
    EXIT_CODES_START = b"[mpiexec@"

    def __init__(self, process: subprocess.Popen, folder: Path, nproc: int) -> None:
        self.process, self.folder, self.nproc = process, folder, nproc
        self.said, self.tails = False, {1: b"", 2: b""}
        self.failed_pid: int | None = None
        self.statuses: list[int] | None = None  # each rank's wait status, from EXIT_CODES
        self.held = b""  # standard output held back: the start of a line that may be EXIT_CODES
        self.ended: list[int] = []
        self.pids: dict[int, int] = {}  # rank by process id
        self.selector = selectors.DefaultSelector()
        for stream, fd in ((process.stdout, 1), (process.stderr, 2)):
            if stream is not None:
                self.selector.register(stream, selectors.EVENT_READ, fd)

    @property
    def first(self) -> int | None:
        """The rank whose end ended the run: the one rank mpiexec's exit codes say
        was killed (a signal, not an exit); where they say several were, the first
        of those seen to end (its pidfd); without the codes, the rank mpiexec's
        report names, else the first seen to end."""
        if self.statuses is not None:
            killed = [rank for rank, status in enumerate(self.statuses)
                      if 0 < status & 0x7F < 0x7F]
            seen = [rank for rank in self.ended if rank in killed]
            if len(killed) == 1 or (killed and not seen):
                return killed[0]
            if seen:
                return seen[0]
        if self.failed_pid in self.pids:
            return self.pids[self.failed_pid]
        return self.ended[0] if self.ended else None

    def run(self) -> None:
        """Until mpiexec has ended and its standard output and error are closed,
        and then until every rank is gone, killed where GONE_S has passed."""
        while self._streams() or self.process.poll() is None:
            self._watch_new_ranks()
            self._wait(0.1)
        deadline = time.monotonic() + GONE_S
        while self.selector.get_map() and (left := deadline - time.monotonic()) > 0:
            self._wait(left)
        for key in list(self.selector.get_map().values()):
            with suppress(OSError):  # gone since
                signal.pidfd_send_signal(key.fileobj, signal.SIGKILL)
            os.close(key.fileobj)
        self.selector.close()

    def _streams(self) -> bool:
        """Whether mpiexec's standard output or error is still open."""
        return any(type(key.fileobj) is not int for key in self.selector.get_map().values())

    def _wait(self, timeout: float) -> None:
        """What comes within ``timeout``: mpiexec's output, ranks that end."""
        for key, _ in self.selector.select(timeout=timeout):
            if type(key.fileobj) is int:  # a rank's pidfd
                self.ended.append(key.data)
                self.selector.unregister(key.fileobj)
                os.close(key.fileobj)
            else:
                self._pass_on(key.fileobj, key.data)

    def _pass_on(self, stream: Any, fd: int) -> None:
        """What mpiexec wrote to ``stream``, written to this process's ``fd``
        (1 or 2; a closed reader of standard output drops it), but its exit codes."""
        data = os.read(stream.fileno(), 65536)
        if not data:
            self.selector.unregister(stream)
            stream.close()
        seen, self.tails[fd] = self.tails[fd] + data, data[-200:]
        if fd == 2:
            self.said = self.said or self.MARK in seen
        else:
            if self.failed_pid is None and (found := self.FAILED_PID.search(seen)):
                self.failed_pid = int(found.group(1))
            data = self._without_exit_codes(self.held + data, ended=not data)
        if data:
            with suppress(BrokenPipeError):
                os.write(fd, data)

    def _without_exit_codes(self, data: bytes, ended: bool) -> bytes:
        """``data`` of mpiexec's standard output less its EXIT_CODES line, which
        gives ``statuses``; unless the output ``ended``, a last line that may yet
        become one is held back (``held``)."""
        if (found := self.EXIT_CODES.search(data)) is not None:
            codes = re.sub(rb"\[[^\]]*\]", b" ", found.group(1))
            self.statuses = [int(code) for code in re.findall(rb"\d+", codes)]
            data = data[:found.start()] + data[found.end():]
        last = data.rfind(b"\n") + 1
        partial = data[last:]
        if ended or not (partial and (partial.startswith(self.EXIT_CODES_START)
                                      or self.EXIT_CODES_START.startswith(partial))):
            self.held = b""
            return data
        self.held = partial
        return data[:last]

    def _watch_new_ranks(self) -> None:
        if len(self.pids) == self.nproc:
            return
        for entry in self.folder.iterdir():
            if not entry.name.isdigit():
                continue
            pid = entry.read_text().strip()
            if int(entry.name) in self.pids.values() or not pid:
                continue
            self.pids[int(pid)] = int(entry.name)
            if not hasattr(os, "pidfd_open"):
                continue
            try:
                self.selector.register(os.pidfd_open(int(pid)), selectors.EVENT_READ,
                                       int(entry.name))
            except ProcessLookupError:
                self.ended.append(int(entry.name))
