"""The `automix` console script."""

import subprocess
import sys
from pathlib import Path

import pytest

from automix_lite import cli


def test_info_reports_versions_mode_and_ranges(capsys, monkeypatch):
    monkeypatch.setenv("AUTOMIX_MODE", "fast")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "run mode     fast" in out
    assert "torch" in out and "threshold_db" in out and "t60_s" in out and "cutoff_hz" in out


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["mix-everything"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("automix")
    assert script.exists(), "the `automix` console script is missing: reinstall with `pip install -e .`"
    done = subprocess.run([str(script), "info"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("automix-lite ")
