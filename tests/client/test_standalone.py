"""The client package stands alone: none of its modules imports the server, rust_infer or
torch (the clean-virtualenv check, scripts/client_smoke.sh, proves the same on a real install)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from t2v_client import cli

from t2v import cli as server_cli

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"
MODULES = sorted(p.stem for p in (CLIENT_SRC / "t2v_client").glob("*.py") if p.stem != "__main__")


def test_no_client_module_imports_the_server_or_torch() -> None:
    blocked = ["t2v", "rust_infer", "torch", "numpy"]
    code = "; ".join(
        [
            "import sys",
            *[f"sys.modules[{name!r}] = None" for name in blocked],
            *[f"import t2v_client.{module}" for module in MODULES],
            # The CLI's own commands, without the ones the server adds.
            "from t2v_client.cli import build_parser",
            "build_parser().parse_args(['generate', 'x', '--width', '64'])",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(CLIENT_SRC)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(MODULES) >= 8


def test_the_server_commands_plug_in_once_and_a_broken_plugin_costs_only_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    declared = [
        EntryPoint("server", "t2v.cli:register", cli.COMMAND_GROUP),
        EntryPoint("broken", "no_such_module:register", cli.COMMAND_GROUP),
    ]
    monkeypatch.setattr(cli, "entry_points", lambda group: declared)
    # `python -m t2v` passes the registrar its entry point also names: added once.
    found = cli.plugins([server_cli.register])
    assert found == [server_cli.register]
    assert "no_such_module" in capsys.readouterr().err
    args = cli.build_parser(found).parse_args(["local", "--port", "0"])
    assert args.run is not None and args.port == 0
