"""The package arrows of docs/architecture.md, checked on every import statement of every module.

Imports inside functions count too: a lazy import still makes a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
MAX_ROOT_MODULES = 12


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against
    ``module``, its dotted name, by default derived from its place in the repository)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


#: (package whose modules are checked, packages they must not import, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("circuits", ("backends", "qadapters", "torch", "qiskit", "pennylane"), "the IR is numpy only"),
    ("backends", ("qadapters",), "backends compile circuits and know nothing of adapters"),
    (
        "qadapters.families",
        ("qadapters.experiments", "qadapters.cli", "qadapters.qnn", "qadapters.integrations"),
        "families are library code",
    ),
    (
        "qadapters.qnn",
        ("qadapters.experiments", "qadapters.cli", "qadapters.integrations"),
        "the QNN stack is library code",
    ),
    ("qadapters.integrations", ("qadapters.experiments", "qadapters.cli"), "library code"),
    ("qadapters.cli", ("qadapters.experiments",), "experiment commands load by name when run"),
]


@pytest.mark.parametrize(("package", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...], why: str) -> None:
    bad = [
        f"{_module_name(path)} imports {name}"
        for path in _sources(package)
        for name in sorted(_imports(path))
        if any(_within(name, f) for f in forbidden)
    ]
    assert not bad, f"{why}: " + "; ".join(bad)


def test_public_surface_imports_no_room_above_it() -> None:
    root_modules = sorted((ROOT / "qadapters").glob("*.py"))
    rooms = ("qadapters.experiments", "qadapters.cli", "qadapters.qnn", "qadapters.integrations")
    bad = [
        f"{_module_name(path)} imports {name}"
        for path in root_modules
        for name in sorted(_imports(path))
        if any(_within(name, r) for r in rooms)
    ]
    assert not bad, "; ".join(bad)


def test_nothing_but_the_cli_and_benchmarks_imports_experiments() -> None:
    bad = [
        f"{_module_name(path)} imports {name}"
        for pkg in ("circuits", "backends", "qadapters")
        for path in _sources(pkg)
        if not _within(_module_name(path), "qadapters.experiments")
        for name in sorted(_imports(path))
        if _within(name, "qadapters.experiments")
    ]
    assert not bad, "; ".join(bad)


def test_root_of_qadapters_is_small_and_files_are_short() -> None:
    root_modules = [p.name for p in (ROOT / "qadapters").glob("*.py")]
    assert len(root_modules) <= MAX_ROOT_MODULES, sorted(root_modules)
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for pkg in ("circuits", "backends", "qadapters", "benchmarks")
        for p in _sources(pkg)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, long


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from backends import exact\n    from . import gates\n")
    found = _imports(probe, "circuits.probe")
    assert {"backends", "backends.exact", "circuits", "circuits.gates"} <= found
