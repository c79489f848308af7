"""The workspace as a user meets it: every package's CLI answers, and the packages keep to their dependency rules."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())


@pytest.mark.parametrize("package", METHODS)
def test_every_package_cli_answers(package):
    for args in (["--help"], ["train", "--help"], ["eval", "--help"], ["recipes", "--help"]):
        result = subprocess.run([sys.executable, "-m", package, *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    train_help = subprocess.run(
        [sys.executable, "-m", package, "train", "--help"], capture_output=True, text=True
    ).stdout
    for option in ("--dataset", "--data-root", "--batch-size", "--seed", "--device", "--amp", "--out", "--resume"):
        assert option in train_help, f"{package} train lacks {option}"
    assert "--epochs" in train_help or "--steps" in train_help


@pytest.mark.parametrize("package", METHODS)
def test_method_packages_depend_on_mixlab_and_never_on_each_other(package):
    meta = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    deps = [re.split(r"[<>=\[ ;]", d)[0] for d in meta["project"]["dependencies"]]
    assert "mixlab" in deps
    assert not set(deps) & (set(METHODS) - {package})
    for source in (ROOT / "packages" / package / "src").rglob("*.py"):
        text = source.read_text()
        for other in set(METHODS) - {package}:
            assert not re.search(rf"^\s*(from|import)\s+{other}\b", text, re.M), f"{source} imports {other}"


def test_workspace_layout_and_lock():
    assert (ROOT / "uv.lock").is_file() and (ROOT / ".ci" / "run").is_file()
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert root["tool"]["uv"]["workspace"]["members"] == ["shared", "packages/*"]
    assert "project" not in root  # a virtual workspace root
    core = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())
    assert core["project"]["name"] == "mixlab"
    core_deps = " ".join(core["project"]["dependencies"])
    assert "timm" not in core_deps and "segmentation-models-pytorch" not in core_deps  # extras only
