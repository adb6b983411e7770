"""An applied migration is frozen: it reads nothing from code that may change after it.

A revision that took a tuning constant or a helper from live code would build something
else in a new database than it built in the databases it ran in already. Revisions import
only the standard library, alembic, SQLAlchemy and the shared migrations (each a frozen,
versioned function); the benchmarks import nothing from the tests.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "libs/plumbing/src/tpp_plumbing/db/shared_migrations.py"
FROZEN_SOURCES = ("alembic", "sqlalchemy", "tpp_plumbing.db.shared_migrations")
#: (revision file, module): live code a revision may use, and why.
ALLOWED = {
    # A data migration encrypting stored personal data: it needs the service's keys and cipher.
    ("0501_personal_data_at_rest.py", "tpp_enrollment.personal"),
}


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports, anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _frozen(module: str) -> bool:
    top = module.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or top == "__future__"
        or any(module == m or module.startswith(f"{m}.") for m in FROZEN_SOURCES)
    )


def test_migrations_read_nothing_from_live_code() -> None:
    revisions = sorted(ROOT.glob("services/*/alembic/versions/*.py"))
    assert revisions
    live = {
        (path.name, module)
        for path in [*revisions, SHARED]
        for module in imported_modules(path)
        if not _frozen(module)
    }
    assert live - ALLOWED == set(), "spell the values out in the revision"


def test_the_benchmarks_import_nothing_from_the_tests() -> None:
    offenders = [
        path.name
        for path in sorted((ROOT / "bench").glob("*.py"))
        if "tpp_testkit" in imported_modules(path)
        or '"tests"' in path.read_text(encoding="utf-8")  # tests/ put on sys.path
    ]
    assert offenders == []
