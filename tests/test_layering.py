"""The dependency arrows of DESIGN.md, checked by scanning every import statement."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"irt", "engine", "calibration", "item_bank", "web"}
ALLOWED = {
    "irt": set(),
    "engine": {"irt"},
    "calibration": {"irt"},
    "item_bank": {"irt", "engine", "calibration"},
    "web": {"irt", "engine", "calibration", "item_bank"},
}
FORBIDDEN_THIRD_PARTY = {"item_bank": {"flask", "werkzeug", "flask_login", "flask_wtf"},
                         "irt": {"flask", "sqlalchemy"}, "engine": {"flask", "sqlalchemy"},
                         "calibration": {"flask", "sqlalchemy"}}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_layering(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    violations = []
    for path in files:
        roots = imported_roots(path)
        for bad in sorted((roots & OURS) - ALLOWED[package] - {package}):
            violations.append(f"{path.relative_to(ROOT)} imports {bad}")
        for bad in sorted(roots & FORBIDDEN_THIRD_PARTY.get(package, set())):
            violations.append(f"{path.relative_to(ROOT)} imports {bad}")
    assert not violations, "\n".join(violations)


def test_nothing_outside_web_imports_web() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for pkg in ("irt", "engine", "calibration", "item_bank")
        for p in (ROOT / pkg).rglob("*.py")
        if "web" in imported_roots(p)
    ]
    assert not offenders


def test_scanner_detects_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("import numpy\nfrom engine.session import x\nimport web.cli as c\n")
    assert imported_roots(bad) == {"numpy", "engine", "web"}
