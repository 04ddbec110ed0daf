"""The ``cordon`` command. Django is set up lazily so that ``--help`` and the pure analytics commands
answer at once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="Cordon — outbreak command platform.", no_args_is_help=True, add_completion=False)
import_app = typer.Typer(help="Import files (CSV in UTF-8/GBK/GB18030, or XLSX).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit chain.", no_args_is_help=True)
policy_app = typer.Typer(help="Prevention policy profiles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for machine clients.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(token_app, name="token")
console = Console()
err = Console(stderr=True)


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cordon.settings")
    import django

    django.setup()


def _migrate(verbose: bool = False) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=1 if verbose else 0)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    setup_django()
    _migrate(verbose=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(0, help="Worker processes (default: one per core, at least 2)."),
    threads: int = typer.Option(4, help="Threads per worker (requests each worker serves at once)."),
    with_worker: bool = typer.Option(False, "--with-worker", help="Also run a background-task worker."),
) -> None:
    """Run the web server (gunicorn, with static files served by the app itself: no CDN, no proxy needed)."""
    setup_django()
    from cordon.web.server import run_server

    run_server(host, port, workers=workers or None, threads=threads, with_worker=with_worker)


@app.command()
def worker(
    queue: Annotated[list[str] | None, typer.Option("--queue", help="Queue(s) to work on.")] = None,
    every: Annotated[
        float,
        typer.Option("--every", help="Seconds between runs of the clock jobs (task reminders and escalation, "
                     "coverage figures); 0 turns them off in this worker."),
    ] = 60.0,
) -> None:
    """Run background tasks (imports, analytics) from the database queue, and the clock jobs."""
    setup_django()
    from django.core.management import call_command

    if every > 0:
        from cordon.core import periodic

        periodic.start(every)
    args = ["--queue-name", ",".join(queue)] if queue else ["--queue-name", "*"]
    call_command("db_worker", *args)


ROLE_HELP = "commander, investigator, testing, isolation, grid_worker, supervisor, analyst, admin or machine"


@app.command()
def createuser(
    name: str,
    role: str = typer.Option(..., help=ROLE_HELP),
    region: str = typer.Option(..., help="Region code of the user's jurisdiction."),
    password: str | None = typer.Option(None, help="Password; asked for when not given."),
    display_name: str = typer.Option("", help="Name shown in the UI."),
) -> None:
    """Create a user attached to one region (their jurisdiction is its subtree)."""
    setup_django()
    from cordon.core.users import UserError, create_user

    if password is None and role != "machine":
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(name, role=role, region_code=region, password=password, display_name=display_name)
    except UserError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"created [bold]{user.username}[/] ({user.role}) for {user.region.name} {user.region_id}")


@token_app.command("create")
def token_create(
    username: str = typer.Argument(..., help="The user (usually a machine client) the token acts as."),
    name: str = typer.Option("", "--name", help="A label, e.g. the lab or terminal."),
) -> None:
    """Create a bearer token. It is printed once and stored only as a hash."""
    setup_django()
    from cordon.core.models import User
    from cordon.core.tokens import create_token

    user = User.objects.filter(username=username).first()
    if user is None:
        err.print(f"[red]error:[/] no user {username!r}")
        raise typer.Exit(2)
    token, secret = create_token(user, name or username, actor="cli")
    err.print(f"token #{token.pk} for {username}; store it now, it is not shown again:")
    print(secret)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token by its number."""
    setup_django()
    from cordon.core.models import ApiToken
    from cordon.core.tokens import revoke_token

    token = ApiToken.objects.filter(pk=token_id).first()
    if token is None:
        err.print(f"[red]error:[/] no token #{token_id}")
        raise typer.Exit(2)
    revoke_token("cli", token)
    console.print(f"revoked token #{token_id}")


@token_app.command("list")
def token_list() -> None:
    """List tokens (never their secrets)."""
    setup_django()
    from rich.table import Table

    from cordon.core.models import ApiToken

    t = Table("id", "user", "name", "prefix", "created", "last used", "revoked")
    for tok in ApiToken.objects.select_related("user").order_by("pk"):
        t.add_row(str(tok.pk), tok.user.username, tok.name, tok.prefix, str(tok.created_at)[:19],
                  str(tok.last_used_at or "")[:19], str(tok.revoked_at or "")[:19])  # fmt: skip
    console.print(t)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                    TimeElapsedColumn(), console=err, transient=True)  # fmt: skip


def _run_import(kind: str, file: Path, errors: Path | None, as_json: bool, username: str | None) -> None:
    setup_django()
    from cordon.core.importing import EXIT_USAGE, FileUnusable

    user = None
    if username:
        from cordon.core.models import User

        user = User.objects.filter(username=username).first()
        if user is None:
            err.print(f"[red]error:[/] no user {username!r}")
            raise typer.Exit(EXIT_USAGE)
    if kind == "people":
        from cordon.people.importer import import_people as run
    else:
        from cordon.regions.services import import_regions as run
    try:
        with _progress() as progress:
            task = progress.add_task(f"importing {file.name}", total=None)
            summary = run(file, user=user, errors_path=errors,
                          progress=lambda n: progress.update(task, completed=n))  # fmt: skip
    except (FileUnusable, PermissionError) as exc:
        if as_json:
            print(json.dumps({"error": str(exc)}, ensure_ascii=False))
        else:
            err.print(f"[red]error:[/] {file}: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    if as_json:
        print(summary.as_json())
    else:
        console.print(
            f"accepted [green]{summary.accepted:,}[/], updated {summary.updated:,}, unchanged {summary.unchanged:,}, "
            f"rejected [red]{summary.rejected:,}[/]" + (f"; error report: {summary.errors}" if summary.errors else "")
        )
    raise typer.Exit(summary.exit_code)


ErrorsOpt = Annotated[Path | None, typer.Option("--errors", help="Write the error report (CSV) here.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a one-line JSON summary.")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Import as this user (limits rows to their jurisdiction).")]


@import_app.command("people")
def import_people_cmd(file: Path, errors: ErrorsOpt = None, as_json: JsonOpt = False, as_user: AsOpt = None) -> None:
    """Import people. Exit 0: all accepted or unchanged; 3: some rows rejected (the rest kept); 2: unusable file."""
    _run_import("people", file, errors, as_json, as_user)


@import_app.command("regions")
def import_regions_cmd(file: Path, errors: ErrorsOpt = None, as_json: JsonOpt = False) -> None:
    """Import regions (code, name, level, parent_code, population). Same exit codes as people."""
    _run_import("regions", file, errors, as_json, None)


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit chain; exit 1 naming the first broken event if any row was altered, removed or inserted."""
    setup_django()
    from cordon.core.audit import verify_chain

    checked, problem = 0, None
    with _progress() as progress:
        task = progress.add_task("verifying", total=None)
        for checked, problem in verify_chain():
            progress.update(task, completed=checked)
            if problem:
                break
    if problem:
        where = f"event #{problem.seq}" + (f" (row id {problem.event_id})" if problem.event_id else "")
        err.print(f"[red]BROKEN[/] at {where}: {problem.reason}; {checked:,} events before it are intact")
        raise typer.Exit(1)
    console.print(f"[green]OK[/] {checked:,} events, chain intact")


@policy_app.command("show")
def policy_show(profile: str | None = typer.Option(None, help="Profile name or path; default the active one.")) -> None:
    """Print a policy profile: every number with its source."""
    from cordon.core.policy import PolicyError, active_policy, format_policy, load_policy

    try:
        p = load_policy(profile) if profile else active_policy()
    except PolicyError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(format_policy(p))


@policy_app.command("list")
def policy_list() -> None:
    """The shipped profiles."""
    from cordon.core.policy import list_profiles

    for name in list_profiles():
        console.print(name)


@app.command()
def demo(
    people: int = typer.Option(100_000, help="People in the demo registry."),
    seed: int = typer.Option(20220601, help="Random seed: the same seed builds the same province."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Start the web server afterwards."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    reset: bool = typer.Option(True, "--reset/--keep", help="Rebuild the demo from scratch."),
) -> None:
    """Build the demo province (Hunan, real codes; synthetic people) and serve it."""
    setup_django()
    from cordon.demo.build import build_demo

    _migrate()
    logins = build_demo(people=people, seed=seed, reset=reset, console=err)
    from rich.table import Table

    t = Table("role", "user", "password", "jurisdiction", title="Demo logins")
    for row in logins:
        t.add_row(*row)
    console.print(t)
    console.print(f"Open [bold]http://{host}:{port}/[/]")
    if serve_after:
        from cordon.web.server import run_server

        run_server(host, port, with_worker=True)


def _register_plugins() -> None:
    """Commands contributed by modules that do not need Django to be set up."""
    from cordon.modules import each

    for _name, module in each("commands"):
        module.register(app)


_register_plugins()


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
