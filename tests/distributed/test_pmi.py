"""A rank that cannot join asks the launcher, over MPICH's PMI-1 wire protocol, to
end every rank (gpunet/distributed/pmi.py); a launcher stood in for by a socket."""
import socket
import threading

from gpunet.distributed import pmi


def launcher(answer: bytes | None):
    """A socket pair: the rank's end, and what the launcher's end received."""
    rank, ours = socket.socketpair()
    heard: list[bytes] = []

    def serve() -> None:
        heard.append(ours.recv(1024))
        if answer is not None:
            ours.sendall(answer)
            heard.append(ours.recv(1024))

    thread = threading.Thread(target=serve)
    thread.start()
    return rank, heard, thread


def test_the_launcher_is_asked_to_end_every_rank_with_the_status():
    rank, heard, thread = launcher(b"cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=2\n")
    assert pmi.abort_launch(2, {"PMI_FD": str(rank.fileno())})
    thread.join(5)
    assert heard == [b"cmd=init pmi_version=1 pmi_subversion=1\n", b"cmd=abort exitcode=2\n"]


def test_without_a_pmi_socket_nothing_is_asked():
    assert not pmi.abort_launch(1, {})
    assert not pmi.abort_launch(1, {"PMI_FD": "not a number"})
    assert not pmi.abort_launch(1, {"PMI_FD": "987654"})  # no such descriptor


def test_a_launcher_that_refuses_or_does_not_answer_is_not_asked(monkeypatch):
    monkeypatch.setattr(pmi, "ANSWER_S", 0.1)
    rank, heard, thread = launcher(None)
    assert not pmi.abort_launch(1, {"PMI_FD": str(rank.fileno())})
    thread.join(5)
    rank, heard, thread = launcher(b"cmd=response_to_init rc=-1\n")
    assert not pmi.abort_launch(1, {"PMI_FD": str(rank.fileno())})
    rank.close()
    thread.join(5)
    assert heard[-1] == b""  # no abort followed the refusal
