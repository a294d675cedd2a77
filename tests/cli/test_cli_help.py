"""The gpunet command explains itself: --version, and help for every option and argument."""
from __future__ import annotations

import argparse

import gpunet
from gpunet.cli.commands import build_parser
from helpers.cli import gpunet_cli

COMMANDS = {"xor", "fizzbuzz", "train", "eval", "show", "bench", "info"}


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands


def test_version():
    done = gpunet_cli("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"gpunet {gpunet.__version__}\n", "")


def test_every_command_option_and_argument_has_help():
    parser = build_parser()
    commands = subcommands(parser)
    assert set(commands.choices) == COMMANDS
    parsers = {"gpunet": parser,
               **{f"gpunet {name}": sub for name, sub in commands.choices.items()}}
    without_help = [f"{prog} {'/'.join(action.option_strings) or action.metavar or action.dest}"
                    for prog, each in parsers.items() for action in each._actions
                    if not action.help or action.help == argparse.SUPPRESS]
    without_help += [f"gpunet {choice.dest}" for choice in commands._choices_actions
                     if not choice.help]
    assert without_help == []


def test_eval_dataset_defaults_to_the_checkpoints():
    eval_parser = subcommands(build_parser()).choices["eval"]
    (dataset,) = [a for a in eval_parser._actions if a.dest == "dataset"]
    assert dataset.default is None and "default: the checkpoint's dataset" in dataset.help
