"""The package as a user installs it: a wheel (the same route as `pip install .` and the Colab cell), in a
fresh environment outside the repository, used from another folder."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env=None, timeout=600):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, automix script, work folder, environment) of a fresh venv holding only the built wheel.

    The wheel is built from a copy of the sources (the checkout stays clean). The new environment sees this
    environment's site-packages for the dependencies (torch alone is gigabytes), appended after its own, so
    ``automix_lite`` can only come from the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "automix_lite", src / "automix_lite", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", src], tmp)
    wheel = next((tmp / "dist").glob("automix_lite-*.whl"))
    env_dir = tmp / "env"
    _run([sys.executable, "-m", "venv", env_dir], tmp)
    py = env_dir / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp)
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).strip())
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if os.path.isdir(p)]
    (purelib / "zz_automix_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOMIX_DATA")}
    env["AUTOMIX_MODE"] = "fast"
    return py, env_dir / "bin" / "automix", work, env


def test_wheel_ships_every_package_file(installed):
    py, _, work, env = installed
    out = _run([py, "-c", "import automix_lite, os; print(os.path.dirname(automix_lite.__file__))"], work, env)
    pkg = Path(out.strip())
    assert ROOT not in pkg.parents, f"automix_lite was imported from the checkout ({pkg}), not from the wheel"
    tracked = subprocess.run(["git", "ls-files", "automix_lite"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    missing = [f for f in tracked if not (pkg.parent / f).exists()]
    assert not missing, f"the wheel leaves out: {missing}"


def test_every_bundled_model_loads_from_the_wheel(installed):
    py, _, work, env = installed
    code = ("import json; from automix_lite import pretrained; from automix_lite.models import proxy\n"
            "names = pretrained.available()\n"
            "assert names == list(pretrained.REGISTRY), (names, list(pretrained.REGISTRY))\n"
            "for n in names: pretrained.load(n)\n"
            "proxy.load_checkpoint(proxy.BUNDLED_CHECKPOINT)\n"
            "print(json.dumps(names))")
    names = json.loads(_run([py, "-c", code], work, env).strip().splitlines()[-1])
    assert "dmc_basic_songs" in names and len(names) >= 4


def test_cli_mixes_a_bundled_song_from_another_folder(installed):
    py, automix, work, env = installed
    song = json.loads((ROOT / "data" / "manifest.json").read_text())["songs"]
    song = next(s for s in song if s["task"] == "songs" and s["split"] == "test")
    stems = work / "stems"
    stems.mkdir(exist_ok=True)
    for f in (ROOT / "data").glob(f"*/{song['id']}/*.ogg"):
        shutil.copy(f, stems / f.name)
    assert any(stems.iterdir())
    for model in ("dmc_basic_songs", "wave_u_net_drums"):
        out = work / f"mix_{model}.wav"
        _run([automix, "mix", stems, "--model", model, "--out", out, "--overwrite"], work, env)
        info = _run([py, "-c", f"import soundfile as sf; i = sf.info(r'{out}'); print(i.channels, i.frames)"], work, env)
        channels, frames = map(int, info.split())
        assert channels == 2 and frames > 44100
