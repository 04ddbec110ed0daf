"""``cordon trace …``: the co-location engine and the check-in store from the command line.

Wiring: ``cordon.cli`` calls ``register(app)``, which adds a ``trace`` sub-command group. The
numbers a protocol sets (minimum overlap, default stay) come from the active policy unless given
on the command line; the policy module is imported only then, so the commands also work (with
explicit options) before or without the Django side.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cordon.tracing.colocation import BadRow

DEFAULT_DATA_DIR_ENV = "CORDON_DATA_DIR"
FALLBACK_DATA_DIR = "var"


class EngineChoice(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


def default_data_dir() -> Path:
    """Where the data folder is when ``--data-dir`` is not given: $CORDON_DATA_DIR or ./var (as settings)."""
    return Path(os.environ.get(DEFAULT_DATA_DIR_ENV, FALLBACK_DATA_DIR))


def deployment_tz() -> str:
    """The deployment's zone (settings ``TIME_ZONE``), read without setting Django up: partners
    export wall-clock times of where the deployment runs, and the store's days are that zone's."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cordon.settings")
    from django.conf import settings

    return str(settings.TIME_ZONE)


TZ_HELP = "Zone of times written without an offset [default: the deployment's, settings TIME_ZONE]."


def _policy_defaults() -> tuple[float, float]:
    """(min overlap, default stay) in minutes from the active policy file."""
    from cordon.core.policy import active_policy

    p = active_policy()
    return float(p.colocation.min_overlap_minutes), float(p.colocation.default_stay_minutes)


def _print_bad_rows(console: Console, rows: list[BadRow], total: int, errors_file: Path | None) -> None:
    if not total:
        return
    table = Table(title=f"{total} bad row(s) left out", title_justify="left")
    for col in ("file", "line", "field", "value", "reason"):
        table.add_column(col)
    for b in rows[:20]:
        table.add_row(b.file, "" if b.line is None else str(b.line), b.field, b.value or "", b.reason)
    console.print(table)
    if total > 20:
        hint = f" (all of them in {errors_file})" if errors_file else " (use --errors FILE for all of them)"
        console.print(f"… and {total - 20} more{hint}")


def colocation(
    checkins: Path = typer.Option(..., "--checkins", help="CSV or Parquet file, or a folder of them."),
    index: Path = typer.Option(..., "--index", help="CSV: person_id, infectious_from, infectious_to."),
    out: Path = typer.Option(..., "--out", help="Output CSV."),
    engine: EngineChoice = typer.Option(EngineChoice.duckdb, "--engine", help="duckdb (embedded) or spark."),
    min_overlap: float | None = typer.Option(
        None, "--min-overlap", metavar="MINUTES", help="Minimum time together [default: policy]."),
    default_stay: float | None = typer.Option(
        None, "--default-stay", metavar="MINUTES", help="Stay when checkout is empty [default: policy]."),
    tz: str | None = typer.Option(None, "--tz", help=TZ_HELP),
    threads: int | None = typer.Option(None, "--threads", help="Worker threads [default: all cores]."),
    errors: Path | None = typer.Option(None, "--errors", help="Write every bad row to this CSV."),
) -> None:
    """Find everyone who shared a venue with an index person while infectious (时空伴随)."""
    from cordon.tracing.colocation import run_colocation

    console = Console(stderr=True)
    tz = tz or deployment_tz()
    if min_overlap is None or default_stay is None:
        policy_overlap, policy_stay = _policy_defaults()
        min_overlap = policy_overlap if min_overlap is None else min_overlap
        default_stay = policy_stay if default_stay is None else default_stay
    try:
        with console.status("co-location: starting") as status:
            result = run_colocation(
                checkins, index, out, engine=engine.value, min_overlap_minutes=min_overlap,
                default_stay_minutes=default_stay, tz=tz, threads=threads, errors_out=errors,
                on_stage=lambda s: status.update(f"co-location: {s}"),
            )
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    _print_bad_rows(console, result.bad_rows, result.bad_row_count, errors)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    console.print(f"[green]{result.rows}[/green] contact row(s) → {out}  ({result.engine}; {timings})")


def import_checkins(
    file: Path = typer.Argument(..., help="CSV or Parquet file (or a folder of them) of check-ins."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help=f"Data folder [default: ${DEFAULT_DATA_DIR_ENV} or {FALLBACK_DATA_DIR}]."),
    tz: str | None = typer.Option(None, "--tz", help=TZ_HELP),
    default_stay: float | None = typer.Option(
        None, "--default-stay", metavar="MINUTES", help="Recorded in the manifest only."),
    threads: int | None = typer.Option(None, "--threads", help="Worker threads [default: all cores]."),
) -> None:
    """Import venue check-ins into the day-partitioned Parquet store (idempotent)."""
    from cordon.tracing.checkins import import_checkins as do_import

    console = Console(stderr=True)
    tz = tz or deployment_tz()
    target = data_dir or default_data_dir()
    try:
        with console.status("import: starting") as status:
            summary = do_import(file, target, tz=tz, default_stay_minutes=default_stay, threads=threads,
                                on_stage=lambda s: status.update(f"import: {s}"))
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    for f in summary.skipped_files:
        console.print(f"already imported, skipped: {f}")
    _print_bad_rows(console, summary.bad_rows, summary.bad_row_count, None)
    if summary.files:
        console.print(
            f"[green]{summary.rows_added}[/green] new check-in(s) of {summary.rows_read} read, "
            f"{summary.duplicates} duplicate(s), {summary.bad_row_count} bad; "
            f"{len(summary.days)} day(s) in {target} ({summary.seconds:.2f}s)")


def register(app: typer.Typer) -> None:
    """Add the ``trace`` command group (``colocation``, ``import-checkins``) to the CLI."""
    trace = typer.Typer(help="Contact tracing: check-in logs and space-time co-location.",
                        no_args_is_help=True)
    trace.command("colocation")(colocation)
    trace.command("import-checkins")(import_checkins)
    app.add_typer(trace, name="trace")
