"""What every subcommand uses: the console, running a coroutine, failing with a message."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

# rich is imported on first use: tpp-ops token must start without it.
if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


@functools.cache
def console() -> Console:
    """The terminal the tables are printed to."""
    from rich.console import Console

    return Console()


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine to its end."""
    return asyncio.run(work())


def fail(message: str) -> NoReturn:
    """Print ``message`` in red and exit with code 1."""
    console().print(f"[red]{message}[/red]")
    raise typer.Exit(1)
