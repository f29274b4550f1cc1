"""`fleetcast` and `python -m launch`: every subcommand's --help works and shows its defaults; --version."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcast import cli
from fleetcast.serving.environment import DEFAULT_SERVER, SERVER_ENV
from launch import __main__ as launch_main

ROOT = Path(__file__).resolve().parents[1]
FLEETCAST = Path(sys.executable).with_name("fleetcast")  # the console script `make venv` installs


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The argv prefix of every (nested) subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name)
                yield from subcommands(child, (*path, name))


def parser_of(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


PROGRAMS = {"fleetcast": cli.build_parser, "launch": launch_main.build_parser}
CASES = [(program, path) for program, build in PROGRAMS.items() for path in subcommands(build())]


def help_text(build, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        build().parse_args([*argv, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines; compare unwrapped


def test_every_program_has_its_subcommands():
    names = {program: {path[0] for p, path in CASES if p == program} for program in PROGRAMS}
    assert {"generate", "split", "train", "local-train", "serve", "local-endpoint", "invoke"} <= names[
        "fleetcast"
    ]
    assert {"upload", "process", "train", "deploy", "invoke", "status", "teardown"} <= names["launch"]


@pytest.mark.parametrize(("program", "path"), CASES, ids=[f"{p}-{'-'.join(path)}" for p, path in CASES])
def test_help_exits_zero_and_shows_every_default(program, path, capsys):
    build = PROGRAMS[program]
    text = help_text(build, list(path), capsys)
    shown = 0
    for action in parser_of(build(), path)._actions:
        if not cli.shows_default(action):
            continue
        help_says = " ".join((action.help or "").split())
        if "default" in help_says:  # it explains its default in its own words
            assert help_says.split("(default")[0].strip() in text
        else:
            assert f"(default: {action.default})" in text, f"{action.option_strings} hides its default"
        shown += 1
    # Options left unset (None) show no made-up default.
    assert "(default: None)" not in text
    assert shown or not any(cli.shows_default(a) for a in parser_of(build(), path)._actions)


def test_defaults_of_zero_are_shown_and_unset_ones_are_not(capsys):
    text = help_text(cli.build_parser, ["split"], capsys)
    assert "write N part files of whole customers instead (default: 0)" in text
    assert "(default: /opt/ml/processing/output, under SAGEMAKER_BASE_DIR)" in text


def test_serve_help_names_the_default_server(capsys):
    text = help_text(cli.build_parser, ["serve"], capsys)
    assert f"{SERVER_ENV} picks the server: {DEFAULT_SERVER} (the default" in text
    assert "Multi Model Server, needs Java" in text


def test_version_comes_from_the_installed_metadata():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = subprocess.run(
        [str(FLEETCAST), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fleetcast {declared}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", declared)


@pytest.mark.parametrize(("program", "path"), CASES, ids=["-".join((p, *s)) for p, s in CASES])
def test_no_option_shadows_the_subcommand_function(program: str, path: tuple[str, ...]) -> None:
    # Each subcommand stores its function as `run`; an option with dest `run` would replace it by a string.
    dests = {action.dest for action in parser_of(PROGRAMS[program](), path)._actions}
    assert "run" not in dests, f"{program} {' '.join(path)}: an option's dest is 'run'"
