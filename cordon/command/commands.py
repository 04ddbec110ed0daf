"""``cordon command tick|aggregate`` and ``cordon bulletin DATE``."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

command_app = typer.Typer(help="The command centre: reminders, escalation, dashboard figures.", no_args_is_help=True)


def _setup() -> None:
    from cordon.cli import setup_django

    setup_django()


@command_app.command("tick")
def tick() -> None:
    """Send due reminders, due notices and escalations (idempotent: run it every few minutes)."""
    _setup()
    from cordon.command.services import tick as run

    typer.echo(json.dumps(run()))


@command_app.command("aggregate")
def aggregate(day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD; all dates if omitted")] = None) -> None:
    """Rebuild the dashboard's pre-aggregated daily figures from the records."""
    _setup()
    from cordon.command.aggregate import rebuild

    try:
        d = date.fromisoformat(day) if day else None
    except ValueError:
        typer.echo(f"--date: not a date: {day!r} (expected YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"date": day or "all", "rows": rebuild(d)}))


def bulletin(
    day: Annotated[str, typer.Argument(help="the date (YYYY-MM-DD) whose 0–24 h the bulletin covers")],
    region: Annotated[str | None, typer.Option("--region", help="region code (default: the province)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, html or json")] = "text",
    lang: Annotated[str, typer.Option("--lang", help="zh or en (text and html)")] = "zh",
) -> None:
    """Print the daily bulletin computed from the data (the published text, if one is published)."""
    _setup()
    from django.utils.html import escape

    from cordon.command import bulletin as bl
    from cordon.command.models import Bulletin
    from cordon.regions.models import Region

    try:
        d = date.fromisoformat(day)
    except ValueError:
        typer.echo(f"DATE: not a date: {day!r} (expected YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None
    reg = Region.objects.filter(code=region).first() if region else Region.objects.filter(level="province").first()
    if reg is None or reg.level not in ("province", "city", "county"):
        typer.echo(f"--region: no province, city or county with code {region!r}", err=True)
        raise typer.Exit(2)
    pub = Bulletin.objects.filter(region_code=reg.code, date=d, status="published").first()
    figures = pub.figures if pub else bl.compute(reg, d)
    if fmt == "json":
        typer.echo(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    text = bl.render_zh(figures) if lang == "zh" else bl.render_en(figures)
    if fmt == "html":
        typer.echo("\n".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n")))
    elif fmt == "text":
        typer.echo(text)
    else:
        typer.echo("--format: text, html or json", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(command_app, name="command")
    app.command("bulletin")(bulletin)
