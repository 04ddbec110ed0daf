"""``cordon isolation …``: bed assignment for a batch, the day's release list, the missed-test sweep.

Each command acts as a named user (``--as``), so the same jurisdiction and capability checks and the same
audit trail apply as in the UI.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

iso_app = typer.Typer(help="Transfer and isolation: beds, releases.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _setup(username: str):
    from cordon.cli import setup_django

    setup_django()
    from cordon.core.models import User

    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        err.print(f"[red]error:[/] no active user {username!r}")
        raise typer.Exit(2)
    return user


def _read_ids(path: Path) -> list[int]:
    """Contact ids, one per line or comma-separated, or a CSV whose first column is the id (a header is
    skipped); a line that is not a number is an error naming the line."""
    ids: list[int] = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        for cell in line.replace(";", ",").split(",")[:1]:
            cell = cell.strip()
            if not cell:
                continue
            if not cell.isdigit():
                if n == 1:
                    break  # a header
                err.print(f"[red]error:[/] {path}, line {n}: contact id expected, got {cell!r}")
                raise typer.Exit(2)
            ids.append(int(cell))
    return ids


@iso_app.command("assign")
def assign(
    site: str = typer.Option(..., "--site", help="Site code."),
    contacts: Path | None = typer.Option(None, "--contacts", help="File of contact ids (one per line or CSV)."),
    due: bool = typer.Option(False, "--due", help="Every contact in your jurisdiction waiting for a bed."),
    as_user: str = typer.Option(..., "--as", help="The user acting (their jurisdiction applies)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and its cost, place nobody."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Beds for a batch: households together, one cohort per floor; prints the restart cost vs first-fit."""
    user = _setup(as_user)
    from django.http import Http404

    from cordon.isolation import queries, services
    from cordon.people.validation import FieldError

    if (contacts is None) == (not due):
        err.print("[red]error:[/] give --contacts FILE or --due")
        raise typer.Exit(2)
    try:
        s = queries.get_site(user, site)
        qs = queries.contacts_awaiting_bed(user).select_related("person")
        if contacts is not None:
            ids = _read_ids(contacts)
            found = {c.pk: c for c in qs.filter(pk__in=ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                err.print(f"[red]error:[/] contact {missing[0]} is not waiting for a bed in your jurisdiction")
                raise typer.Exit(2)
            rows = [found[i] for i in ids]
        else:
            rows = list(qs.order_by("identified_at", "pk"))
        res = services.assign_beds(user, s, [services.Candidate.from_contact(c) for c in rows], dry_run=dry_run)
    except Http404 as e:
        err.print(f"[red]error:[/] site {site!r}: {e}")
        raise typer.Exit(2) from e
    except FieldError as e:
        err.print(f"[red]error:[/] {e.field}: {e.reason}")
        raise typer.Exit(2) from e
    out = {"site": s.code, "candidates": len(rows), "placed": len(res.placements), "at_home": len(res.at_home),
           "unplaced": len(res.unplaced), "errors": len(res.errors), "cost": res.cost,
           "baseline_cost": res.baseline_cost, "strategy": res.strategy, "dry_run": dry_run}  # fmt: skip
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for n, reason in res.errors:
            err.print(f"contact {rows[n].pk}: {reason}")
        console.print(f"{s.code}: {out['placed']} placed in rooms, {out['at_home']} at home, "
                      f"{out['unplaced']} without a bed; restart exposure {res.cost} (first-fit {res.baseline_cost})")
    raise typer.Exit(3 if res.unplaced or res.errors else 0)


@iso_app.command("release-list")
def release_list(
    day: str = typer.Option("", "--date", help="YYYY-MM-DD [default: today]."),
    as_user: str = typer.Option(..., "--as", help="The user acting (their jurisdiction applies)."),
    notify: bool = typer.Option(False, "--notify", help="Also emit placement.due_for_release for the day."),
) -> None:
    """Who is due for release on a day (or overdue), with what still blocks each release."""
    user = _setup(as_user)
    from cordon.isolation import queries, services
    from cordon.people.queries import masked

    try:
        on = date.fromisoformat(day) if day else None
    except ValueError as e:
        err.print(f"[red]error:[/] --date: expected YYYY-MM-DD, got {day!r}")
        raise typer.Exit(2) from e
    rows = queries.release_list(user, on)
    table = Table(title=f"release list {on or 'today'}", title_justify="left")
    for col in ("placement", "person", "where", "last day", "conditions"):
        table.add_column(col)
    for r in rows:
        p = r["placement"]
        where = f"{p.site.code} {p.room.number}" if p.site_id else "home"
        table.add_row(str(p.pk), masked(p.person)["name"], where, str(p.end_date) + (" late" if r["late"] else ""),
                      "; ".join(r["blockers"]) or "ready")  # fmt: skip
    console.print(table)
    if notify:
        console.print(f"{services.emit_due_for_release(on)} due-for-release events emitted")


@iso_app.command("sweep-missed")
def sweep_missed(as_user: str = typer.Option(..., "--as", help="The user acting.")) -> None:
    """Mark past test days without a result as missed; the make-up rule extends each stay (缺几天补几天)."""
    user = _setup(as_user)
    from cordon.isolation import services

    console.print(f"{services.sweep_missed(user)} missed test days recorded")


def register(app: typer.Typer) -> None:
    app.add_typer(iso_app, name="isolation")
