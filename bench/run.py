"""Run the benchmark modules, print one table of their figures, save it as JSON.

    make bench                         # every module, full length (~10 minutes)
    make bench ARGS="--quick"          # a short smoke run of every module
    make bench ARGS="registry"         # only some modules (plus the ceilings)
    make bench ARGS="--results"        # ... and write the table into bench/RESULTS.md

Each ``bench/bench_<name>.py`` module runs in its own process (so one crash or hang costs
only its own figures) with a time budget; its figures come back as JSON. Ratios are taken
against the ceilings measured in the same run (``bench_ceilings.py`` runs first). The table
and the raw runs go to ``bench/results/latest.json``; ``--results`` writes the table into
bench/RESULTS.md. The interface is in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from harness import Context, Figure, meets  # noqa: E402 - needs bench/ on sys.path first

#: Modules run in this order; any other bench_*.py runs after them, by name.
FIRST = ("ceilings", "registry", "enrollment")
DEFAULT_BUDGET_S = 300


def discover() -> list[str]:
    """The names of the benchmark modules present (bench_<name>.py)."""
    found = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    return [n for n in FIRST if n in found] + [n for n in found if n not in FIRST]


def _child(name: str, quick: bool, out: Path) -> None:
    """Run one module in this process and write its figures to ``out``."""
    module = importlib.import_module(f"bench_{name}")
    ctx = Context(quick=quick)
    result = module.run(ctx)
    if inspect.isawaitable(result):
        try:
            import uvloop

            result = uvloop.run(_awaited(result))
        except ImportError:
            result = asyncio.run(_awaited(result))
    figures = [f.as_dict() if isinstance(f, Figure) else dict(f) for f in result]
    figures = [f for f in figures if f["value"] == f["value"]]  # NaN: a part that did not run
    out.write_text(json.dumps(figures))


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _budget(name: str) -> float:
    # A module may say how long it needs: TIME_BUDGET_S = 120 (default 300 s).
    source = (BENCH / f"bench_{name}.py").read_text()
    for line in source.splitlines():
        if line.startswith("TIME_BUDGET_S"):
            return float(line.split("=", 1)[1].split("#")[0])
    return DEFAULT_BUDGET_S


def run_module(name: str, quick: bool) -> dict[str, Any]:
    """Run one module in a child process within its budget; its figures and how it went."""
    out = BENCH / "results" / f"{name}.json.tmp"
    out.parent.mkdir(exist_ok=True)
    out.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__)), "--child", name, "--out", str(out)]
    if quick:
        command.append("--quick")
    budget = _budget(name)
    started = time.monotonic()
    print(f"== {name} (budget {budget:.0f} s)", flush=True)
    try:
        process = subprocess.run(  # noqa: S603 - this very script
            command, cwd=ROOT, timeout=budget, stderr=subprocess.PIPE, text=True, check=False
        )
        status = "ok" if process.returncode == 0 and out.exists() else "failed"
        error = "" if status == "ok" else process.stderr[-4000:]
    except subprocess.TimeoutExpired as expired:
        status = "timeout"
        error = f"stopped after {budget:.0f} s; {(expired.stderr or '')[-2000:]!s}"
    figures = json.loads(out.read_text()) if out.exists() else []
    out.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    if status != "ok":
        print(f"   {name}: {status}\n{error}", file=sys.stderr, flush=True)
    return {"module": name, "status": status, "seconds": round(seconds, 1), "error": error} | {
        "figures": figures
    }


def with_ratios(figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each figure with its ratio to its ceiling (same run) and whether it meets its target."""
    by_name = {f["name"]: f for f in figures}
    for figure in figures:
        ceiling = by_name.get(figure.get("ceiling") or "")
        if ceiling and ceiling["value"]:
            figure["ratio"] = figure["value"] / ceiling["value"]
        if figure.get("target"):
            figure["met"] = meets(figure["value"], figure["target"])
    return figures


def table(figures: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| figure | value | target | met | ratio to ceiling |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for f in figures:
        value = f"{f['value']:,.1f} {f['unit']}"
        met = {True: "yes", False: "**no**", None: ""}[f.get("met")]
        ratio = f"{f['ratio']:.2f} of {f['ceiling']}" if f.get("ratio") is not None else ""
        lines.append(f"| {f['name']} | {value} | {f.get('target') or ''} | {met} | {ratio} |")
    return "\n".join(lines)


RESULTS = BENCH / "RESULTS.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"


def update_results(report: dict[str, Any], results: Path = RESULTS) -> None:
    """Put a report's table (with when, where and how long) between the markers of RESULTS.md."""
    text = results.read_text()
    head, start, rest = text.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise SystemExit(f"{results.name} has no {TABLE_START} ... {TABLE_END} block")
    machine = report["machine"]
    caption = (
        f"Run of {report['when']} at commit {report['commit']} on {machine['cpus']} CPUs,"
        f" Python {machine['python']}, {report['seconds']:.0f} s"
        + (" (--quick)" if report["quick"] else "")
        + "; medians of three runs, ratios to the ceilings of the same run."
    )
    block = f"{start}\n{caption}\n\n{report['table']}\n{end}"
    results.write_text(head + block + tail)
    print(f"{results.name}: table of {report['when']} written")


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def main() -> None:
    """Parse the arguments; run the modules (or be one module's child process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json")
    parser.add_argument(
        "--results",
        action="store_true",
        help="write the table of --out (after the run, or as it is with --no-run) into"
        " bench/RESULTS.md",
    )
    parser.add_argument("--no-run", action="store_true", help="run nothing (with --results)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.quick, args.out)
        return
    if args.no_run:
        if args.results:
            update_results(json.loads(args.out.read_text()))
        return
    names = discover()
    if args.modules:
        unknown = set(args.modules) - set(names)
        if unknown:
            raise SystemExit(f"no such module(s): {', '.join(sorted(unknown))}; have {names}")
        names = [n for n in names if n in args.modules or n == "ceilings"]
    started = time.monotonic()
    modules = [run_module(name, args.quick) for name in names]
    figures = with_ratios([f for m in modules for f in m["figures"]])
    rendered = table(figures)
    print()
    print(rendered)
    report = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "modules": [{k: v for k, v in m.items() if k != "figures"} for m in modules],
        "figures": figures,
        "table": rendered,
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {args.out} ({report['seconds']:.0f} s)")
    if args.results:
        update_results(report)
    if any(m["status"] != "ok" for m in modules):
        sys.exit(1)


if __name__ == "__main__":
    main()
