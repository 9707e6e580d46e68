"""The command line loads a subcommand's module only when that command runs
(``core.cli.ELSEWHERE``), and its help stays complete."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli

ROOT = Path(__file__).resolve().parents[2]
EVERY_COMMAND = sorted(cli.full_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _python(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, check=True)  # fmt: skip
    return p.stdout


def test_the_table_names_what_each_module_registers_with_its_help() -> None:
    for module in dict.fromkeys(m for m, _ in cli.ELSEWHERE.values()):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        listed = {name for name, (m, _) in cli.ELSEWHERE.items() if m == module}
        assert set(sub.choices) == listed, module
        for action in sub._choices_actions:
            assert cli.ELSEWHERE[action.dest][1] == action.help, action.dest


def test_annexsync_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "core.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ")}
    assert listed >= set(EVERY_COMMAND)
    for name, (_, help) in cli.ELSEWHERE.items():
        assert help.split()[0] in out, name


@pytest.mark.parametrize("name", EVERY_COMMAND)
def test_every_command_has_its_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: annexsync {name}")
    full = cli.full_parser()._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    assert out == full.format_help()  # the same help as the parser built at once


def test_a_deferred_command_parses_its_own_arguments() -> None:
    args = cli.build_parser().parse_args(["--config-dir", "/tmp/x", "p2phttp", "--port", "1234",
                                          "-J", "3"])  # fmt: skip
    assert (args.command, args.port, args.jobs, args.config_dir) == ("p2phttp", 1234, 3, Path("/tmp/x"))
    assert args.func.__module__ == "core.p2phttp.cli"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["p2phttp", "--port", "nope"])


def test_add_loads_none_of_the_other_commands_modules() -> None:
    loaded = json.loads(_python(
        "import json, sys; from core import cli; cli.build_parser().parse_args(['add', 'x']); "
        "print(json.dumps(sorted(sys.modules)))"))
    elsewhere = {m for m, _ in cli.ELSEWHERE.values()}
    assert not elsewhere & set(loaded)
    assert not {"asyncio", "aiohttp", "importlib.metadata"} & set(loaded)


def test_version_is_printed_on_stdout() -> None:
    p = subprocess.run([sys.executable, "-m", "core.cli", "--version"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert p.stdout.startswith("annexsync ")


def test_a_plain_p2pstdio_session_loads_no_gateway(tmp_path: Path) -> None:
    """git-annex starts ``p2pstdio`` once per command over ssh, so its start-up
    is paid per command: a session for the repository itself loads neither
    the cluster gateway, nor the preferred-content language, nor the CONNECT
    tunnel (together ~40 ms of imports)."""
    from core.repo.repository import AnnexRepo

    repo = AnnexRepo.init(tmp_path / "r", "r")
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "core.cli", "p2pstdio",
                        str(repo.path), repo.uuid], cwd=ROOT, input="VERSION 1\n",
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.stdout.startswith(f"AUTH-SUCCESS {repo.uuid}\nVERSION 1\n"), p.stdout + p.stderr
    loaded = {line.split("|")[-1].strip() for line in p.stderr.splitlines()
              if line.startswith("import time:")}  # fmt: skip
    assert "core.p2p.serving" in loaded  # what a session needs is there
    assert not {"core.p2p.gateway", "core.repo.preferred", "core.p2p.tunnel"} & loaded
