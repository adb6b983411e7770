"""The services keep their shape: no service imports another; SQL stays in store/.

A use case (service/) hands the store's queries the unit of work's connection (or, for
reporting's reports, a read snapshot's) and never builds SQL or opens a connection itself; a
route (api/) calls a use case, never the store.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "services"
SERVICES = ("registry", "enrollment", "reporting")
#: What builds SQL or talks to the database: the store's to import.
DATABASE = {"sqlalchemy", "asyncpg"}
#: The services whose service/ and api/ are free of it: every one.
LAYERED = SERVICES


def _package(service: str) -> Path:
    return ROOT / service / "src" / f"tpp_{service}"


def imports(path: Path) -> set[str]:
    """The absolute module names a source file imports, anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def importers(folder: Path, forbidden: set[str]) -> dict[str, list[str]]:
    """The modules under ``folder`` that import one of ``forbidden`` (or a module inside
    one), with what they import of it."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        hits = sorted(
            name
            for name in imports(path)
            if any(name == f or name.startswith(f"{f}.") for f in forbidden)
        )
        if hits:
            found[str(path.relative_to(folder.parent))] = hits
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"tpp_{other}" for other in SERVICES if other != service}

    assert importers(_package(service), others) == {}


@pytest.mark.parametrize("service", LAYERED)
def test_use_cases_never_import_a_database_library(service: str) -> None:
    assert importers(_package(service) / "service", DATABASE) == {}


@pytest.mark.parametrize("service", LAYERED)
def test_routes_reach_the_database_only_through_a_use_case(service: str) -> None:
    store = {f"tpp_{service}.store"}

    assert importers(_package(service) / "api", DATABASE | store) == {}


def test_the_check_reads_imports_from_the_sources(tmp_path: Path) -> None:
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "module.py").write_text(
        "import asyncpg\n\ndef f():\n    from sqlalchemy.ext.asyncio import AsyncSession\n"
    )

    assert importers(tmp_path / "service", DATABASE) == {
        "service/module.py": [
            "asyncpg",
            "sqlalchemy.ext.asyncio",
            "sqlalchemy.ext.asyncio.AsyncSession",
        ]
    }
