"""Option values the parser must read as values, and --nproc refused before any rank starts."""
import pytest

from gpunet.cli import main
from gpunet.cli import train as train_command
from gpunet.cli.commands import build_parser


@pytest.mark.parametrize("text, value", [("-1e-9", -1e-9), ("-0.5", -0.5), ("-2", -2.0),
                                         ("-.5", -0.5), ("-1E+3", -1000.0)])
def test_a_negative_number_in_any_notation_is_a_value(capsys, text, value):
    """Not taken for an option (which left --momentum 'expected one argument'): the
    value reaches its check, which names it."""
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["train", "--momentum", text])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --momentum: momentum must be in [0, 1.0), got {value!r}" in err


@pytest.mark.parametrize("options, message", [
    (["--train-subset", "500", "--nproc", "600"],
     "--nproc 600: 600 ranks need at least 600 training samples, got 500"),
    (["--nproc", "600"], "--nproc 600: batch size 128 is smaller than the 600 ranks"),
    (["--batch-size", "4", "--nproc", "5"], "--nproc 5: batch size 4 is smaller than the 5 ranks"),
])
def test_too_many_ranks_are_refused_before_any_starts(monkeypatch, capsys, options, message):
    monkeypatch.setattr(train_command, "launch", lambda *a: pytest.fail("ranks were started"))
    assert main(["train", "--dataset", "fashion-mnist", "--quiet", *options]) == 2
    assert capsys.readouterr().err.startswith(f"gpunet: error: {message}")


@pytest.mark.parametrize("text, message", [
    ("-1", "must be a positive number of seconds, or 0 or off for no limit, got -1"),
    ("nan", "must be a positive number of seconds, or 0 or off for no limit, got nan"),
    ("inf", "must be a positive number of seconds, or 0 or off for no limit, got inf"),
    ("soon", "expected seconds or off, got 'soon'"),
])
def test_a_bad_collective_timeout_is_refused_as_other_values_are(capsys, text, message):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["train", "--collective-timeout", text])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"gpunet train: error: argument --collective-timeout: {message}"


@pytest.mark.parametrize("given, value", [([], 600.0), (["--collective-timeout", "2.5"], 2.5),
                                          (["--collective-timeout", "0"], None),
                                          (["--collective-timeout", "off"], None)])
def test_the_collective_timeout_is_seconds_or_none(given, value):
    assert build_parser().parse_args(["train", *given]).collective_timeout == value
