"""The package's layers: every import of ftlaunch points down (or within its own layer), the compute side
imports only the contract, the contract only the standard library; and the wheel installs one package."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ftlaunch

PKG = Path(ftlaunch.__file__).parent
LAYERS = ("contract", "forecast", "config", "planning", "cluster", "run", "tracking", "cli")
COMPUTE = "recipes"  # the compute side: ftlaunch.contract and nothing else of ftlaunch


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, top-level or deferred inside a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module
            # `from ftlaunch import contract` imports the subpackage named after `import`
            names = [f"{base}.{a.name}" for a in node.names] if base == "ftlaunch" else [base]
            out += [(node.lineno, n) for n in names]
    return out


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ftlaunch" else None


def violations(files: list[Path]) -> list[str]:
    bad = []
    for f in files:
        rel = f.relative_to(PKG)
        own = rel.parts[0] if len(rel.parts) > 1 else None
        if own not in (*LAYERS, COMPUTE):
            continue
        for line, mod in imports(f):
            to = layer_of(mod)
            if to is None or to == own:
                continue
            if own == COMPUTE:
                ok = to == "contract"
            else:
                ok = to in LAYERS and LAYERS.index(to) <= LAYERS.index(own)
            if not ok:
                bad.append(f"{rel}:{line} ({own}) imports {mod} ({to})")
    return bad


def test_every_import_points_down():
    assert violations(sorted(PKG.rglob("*.py"))) == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    # the walker itself: a cluster module importing tracking, a recipe importing the planner
    (tmp_path / "cluster").mkdir()
    (tmp_path / "recipes").mkdir()
    (tmp_path / "cluster" / "x.py").write_text("def f():\n    from ftlaunch.tracking import mlflow_run\n")
    (tmp_path / "recipes" / "y.py").write_text("from ftlaunch import planning\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path)
    found = violations(sorted(tmp_path.rglob("*.py")))
    assert len(found) == 2 and "cluster/x.py:2" in found[0] and "recipes/y.py:1" in found[1]


def test_contract_is_standard_library_only():
    for f in sorted((PKG / "contract").glob("*.py")):
        for line, mod in imports(f):
            top = mod.split(".")[0]
            assert (
                top in sys.stdlib_module_names or mod.startswith("ftlaunch.contract") or top == "__future__"
            ), f"{f.name}:{line} imports {mod}"


@pytest.mark.slow
def test_the_wheel_installs_only_ftlaunch(tmp_path):
    repo = PKG.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(repo)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = tmp_path.glob("ftlaunch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ftlaunch"}, tops
    # what the package reads at run time travels with it
    for data in ("ftlaunch/conf/config.yaml", "ftlaunch/conf/model/tiny.yaml", "ftlaunch/conf/gpu/gpus.csv",
                 "ftlaunch/cluster/ftlaunch.sbatch", "ftlaunch/cluster/local-slurm.sh"):  # fmt: skip
        assert data in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry).decode()
    assert "launch = ftlaunch.cli.launch:main" in scripts
