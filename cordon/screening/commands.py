"""CLI: ``cordon import registrations FILE --campaign ID`` and ``cordon import results FILE --lab CODE``.

Both follow the platform's import contract: exit 0 when every row was accepted or unchanged, 3 when some
rows were rejected (the rest kept, the error report names line, column, value and reason), 2 when the file
itself is unusable; ``--json`` prints a one-line summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

ErrorsOpt = Annotated[Path | None, typer.Option("--errors", help="Write the error report (CSV) here.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a one-line JSON summary.")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Import as this user (limits rows to their jurisdiction).")]


def _user(username: str | None):
    if not username:
        return None
    from cordon.core.models import User

    user = User.objects.filter(username=username).first()
    if user is None:
        err.print(f"[red]error:[/] no user {username!r}")
        raise typer.Exit(2)
    return user


def _finish(summary, as_json: bool) -> None:
    if as_json:
        print(summary.as_json())
    else:
        extra = ", ".join(f"{k} {v:,}" for k, v in summary.extra.items() if isinstance(v, int))
        console.print(
            f"accepted [green]{summary.accepted:,}[/], updated {summary.updated:,}, unchanged {summary.unchanged:,}, "
            f"rejected [red]{summary.rejected:,}[/]" + (f"; {extra}" if extra else "")
            + (f"; error report: {summary.errors}" if summary.errors else "")
        )
    raise typer.Exit(summary.exit_code)


def _fail(file: Path, exc: Exception, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": str(exc)}, ensure_ascii=False))
    else:
        err.print(f"[red]error:[/] {file}: {exc}")
    raise typer.Exit(2) from exc


def import_registrations_cmd(
    file: Path,
    campaign: Annotated[int, typer.Option("--campaign", help="Campaign (round) id.")],
    errors: ErrorsOpt = None,
    as_json: JsonOpt = False,
    as_user: AsOpt = None,
) -> None:
    """Import sampling registrations (scan_id/扫码编号, 试管编码, 证件号码, 姓名, 采样时间, 采样点)."""
    from cordon.cli import setup_django

    setup_django()
    from cordon.core.importing import FileUnusable
    from cordon.screening.ingest import import_registrations
    from cordon.screening.models import Campaign

    c = Campaign.objects.filter(pk=campaign).first()
    if c is None:
        _fail(file, ValueError(f"no campaign {campaign}"), as_json)
    user = _user(as_user)
    try:
        summary = import_registrations(file, campaign=c, user=user, errors_path=errors)
    except (FileUnusable, PermissionError) as exc:
        _fail(file, exc, as_json)
    _finish(summary, as_json)


def import_results_cmd(
    file: Path,
    lab: Annotated[str, typer.Option("--lab", help="Lab code.")],
    errors: ErrorsOpt = None,
    as_json: JsonOpt = False,
    as_user: AsOpt = None,
) -> None:
    """Import lab results (试管编码, 检测结果 阴性/阳性/无效, ORF1ab基因Ct值, N基因Ct值, 检测时间)."""
    from cordon.cli import setup_django

    setup_django()
    from cordon.core.importing import FileUnusable
    from cordon.screening.models import Lab
    from cordon.screening.results import import_results

    the_lab = Lab.objects.filter(code=lab).first()
    if the_lab is None:
        _fail(file, ValueError(f"no lab {lab!r}"), as_json)
    user = _user(as_user)
    try:
        summary = import_results(file, lab=the_lab, user=user, errors_path=errors)
    except (FileUnusable, PermissionError) as exc:
        _fail(file, exc, as_json)
    _finish(summary, as_json)


def register(app: typer.Typer) -> None:
    group = next((g.typer_instance for g in app.registered_groups if g.name == "import"), None)
    if group is None:
        group = typer.Typer(help="Import files.", no_args_is_help=True)
        app.add_typer(group, name="import")
    group.command("registrations")(import_registrations_cmd)
    group.command("results")(import_results_cmd)
