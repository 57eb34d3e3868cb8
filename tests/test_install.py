"""The package installed (not editable) into a fresh environment works from any folder.

The fresh environment borrows this environment's dependencies (TensorFlow and the rest) through a ``.pth``
file, so the test installs only ``m2nist_seg`` itself, from a copy of the project, without a network.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from m2nist_seg.core import settings

PROJECT = settings.PROJECT_ROOT
COPIED = ["pyproject.toml", "README.md", "m2nist_seg", "models"]


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh environment with the package installed from a copy of the project; yields (python, env)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in COPIED:
        if (PROJECT / name).is_dir():
            shutil.copytree(PROJECT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(PROJECT / name, source / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "env"], check=True, timeout=120)
    python = root / "env" / "bin" / "python"
    env_site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (env_site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "M2NIST_CACHE": str(root / "cache"), "M2NIST_QUICK": "", "PYTHONPATH": ""}
    env.pop("M2NIST_RUNS", None)
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)], root, env)
    shutil.rmtree(source)
    return python, env, env_site, root


@pytest.mark.slow
def test_installed_copy_is_not_the_checkout(installed):
    python, env, env_site, root = installed
    found = run([python, "-c", "import m2nist_seg, sys; print(m2nist_seg.__file__)"], root, env).stdout.strip()
    assert Path(found).is_relative_to(env_site), found
    assert (env_site / "m2nist_seg" / "pretrained" / "fcn8_m2nist.keras").is_file()


@pytest.mark.slow
def test_installed_run_writes_under_the_current_folder_and_evaluate_finds_the_shipped_model(installed):
    python, env, env_site, root = installed
    work = root / "work"
    work.mkdir()
    trained = run(
        [python, "-m", "m2nist_seg", "run", "--epochs", "1", "--n-images", "200", "--name", "tiny"], work, env
    )
    assert (work / "runs" / "tiny" / "model.keras").is_file(), trained.stdout
    assert not (env_site / "runs").exists(), "an installed package must not write into site-packages"

    shipped = json.loads((PROJECT / "models" / "report.json").read_text())
    evaluated = run([python, "-m", "m2nist_seg", "evaluate"], work, env).stdout
    assert f"mean digit IoU  {shipped['mean_digit_iou']:.4f}" in evaluated

    own = run([python, "-m", "m2nist_seg", "evaluate", "--model", "runs/tiny/model.keras"], work, env).stdout
    assert "mean digit IoU" in own
