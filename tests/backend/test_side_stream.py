"""The side streams of a captured step (gpunet/backend/side_stream.py), with stand-ins
for CuPy's streams and events that log what is asked of them."""
from __future__ import annotations

from gpunet.backend.side_stream import Branches, SidePool, SideStream


class Logged:
    """A stand-in stream or event: each call and each ``with`` logged by name."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def record(self, stream: "Logged") -> None:
        self.log.append((self.name, "recorded on", stream.name))

    def wait_event(self, event: "Logged") -> None:
        self.log.append((self.name, "waits for", event.name))

    def __enter__(self) -> "Logged":
        self.log.append((self.name, "current"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append((self.name, "no longer current"))


def side_and_main() -> tuple[SideStream, Logged, list]:
    log: list = []
    side = SideStream(Logged("side", log), Logged("forked", log), Logged("joined", log))
    return side, Logged("main", log), log


def test_work_forked_runs_on_the_side_after_main_and_main_waits_for_it_at_the_join():
    side, main, log = side_and_main()
    with side.fork(main):
        log.append("a product")
    side.join(main)
    assert log == [("forked", "recorded on", "main"), ("side", "waits for", "forked"),
                   ("side", "current"), "a product", ("side", "no longer current"),
                   ("joined", "recorded on", "side"), ("main", "waits for", "joined")]


def test_a_join_with_nothing_forked_since_the_last_does_nothing():
    side, main, log = side_and_main()
    side.join(main)
    assert log == []
    with side.fork(main):
        pass
    side.join(main)
    del log[:]
    side.join(main)
    assert log == [] and not side.open


def pools(log: list, sizes: tuple[int, ...]) -> Branches:
    """Branches of ``sizes`` SideStreams over stand-ins, named "products", "products 2", ..."""
    return Branches(*(SidePool([SideStream(Logged(name, log), Logged(f"{name} forked", log),
                                           Logged(f"{name} joined", log))
                                for name in (f"{kind} {i + 1}" if i else kind
                                             for i in range(size))])
                      for kind, size in zip(Branches._fields, sizes)))


def test_a_pool_forks_onto_its_first_free_side_and_onto_the_first_when_none_is():
    log: list = []
    sums, main = pools(log, (1, 2, 1)).sums, Logged("main", log)
    for _ in range(3):
        with sums.fork(main):
            pass
    assert [entry[0] for entry in log if entry[1:] == ("current",)] == ["sums", "sums 2", "sums"]
    del log[:]
    sums.join(main)
    assert log == [("sums joined", "recorded on", "sums"), ("main", "waits for", "sums joined"),
                   ("sums 2 joined", "recorded on", "sums 2"),
                   ("main", "waits for", "sums 2 joined")]
    del log[:]
    with sums.fork(main):  # joined: free again
        pass
    assert log[2] == ("sums", "current")


def test_branches_join_each_and_forget_what_a_failed_capture_left_forked():
    log: list = []
    branches = pools(log, (2, 3, 1))
    main = Logged("main", log)
    with branches.sums.fork(main):
        pass
    del log[:]
    branches.join(main)  # the branches given nothing are not waited for
    assert log == [("sums joined", "recorded on", "sums"), ("main", "waits for", "sums joined")]
    with branches.products.fork(main), branches.sums.fork(main), branches.sums.fork(main):
        pass
    branches.forget()
    del log[:]
    branches.join(main)
    assert log == []
