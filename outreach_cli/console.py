"""What every CLI command shares: the console, the --team option and how a command fails."""

from __future__ import annotations

import uuid
from typing import Annotated, NoReturn

import typer
from rich.console import Console

console = Console()

TeamOption = Annotated[uuid.UUID, typer.Option("--team", help="Team id")]


def fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
