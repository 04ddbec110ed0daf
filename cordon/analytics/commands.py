"""CLI glue: ``cordon rt`` and ``cordon pool-plan``, registered into the lead's Typer app.

Epidemiologists on duty run these by hand on files exported from elsewhere (a CDC spreadsheet, a
colleague's EpiEstim input), so a bad file must fail with the line and the field to fix, and
exit code 2 like any other usage error, instead of a traceback or, worse, a silently wrong R.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cordon.analytics.pooling import plan_pools
from cordon.analytics.rt import check_si_distr, estimate_r, split_first_day_imported


class InputFileError(ValueError):
    """A problem in an input file, located by line and field so the user can fix it."""

    def __init__(self, path: Path, line: int | None, field: str | None, reason: str) -> None:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class IncidenceFile:
    local: np.ndarray
    imported: np.ndarray
    dates: list[dt.date] | None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, stripped fields) for non-blank lines; the header is line 1."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputFileError(path, None, None, f"cannot open: {exc.strerror}") from None
    with handle:
        try:
            for number, fields in enumerate(csv.reader(handle), start=1):
                if any(f.strip() for f in fields):
                    yield number, [f.strip() for f in fields]
        except UnicodeDecodeError:
            raise InputFileError(path, None, None, "not UTF-8 text") from None


def _count(path: Path, line: int, field: str, text: str) -> float:
    try:
        value = int(text)
    except ValueError:
        raise InputFileError(path, line, field, f"{text!r} is not a whole number of cases") from None
    if value < 0:
        raise InputFileError(path, line, field, f"{value} is negative")
    return float(value)


def read_incidence_csv(path: Path) -> IncidenceFile:
    """Read ``date,local[,imported]``, ``date,cases`` or ``t,cases``.

    A ``cases`` column is total incidence, split as EpiEstim does (day 1 imported). Days must be
    consecutive: a missing day is an error, not a zero, because a gap in an export is far more
    often a lost row than a day without cases.
    """
    rows = _rows(path)
    header_item = next(rows, None)
    if header_item is None:
        raise InputFileError(path, None, None, "the file is empty")
    _, header = header_item
    names = [h.lower() for h in header]
    accepted = (["date", "local"], ["date", "local", "imported"], ["date", "cases"], ["t", "cases"])
    if names not in accepted:
        raise InputFileError(
            path, 1, None,
            f"header is {','.join(header)!r}; expected date,local[,imported] or date,cases or t,cases",
        )
    by_date = names[0] == "date"
    dates: list[dt.date] = []
    cols: list[list[float]] = [[] for _ in names[1:]]
    previous: dt.date | int | None = None
    for line, fields in rows:
        if len(fields) != len(names):
            raise InputFileError(path, line, None, f"expected {len(names)} fields, found {len(fields)}")
        if by_date:
            try:
                day = dt.date.fromisoformat(fields[0])
            except ValueError:
                reason = f"{fields[0]!r} is not a date (YYYY-MM-DD)"
                raise InputFileError(path, line, "date", reason) from None
            if previous is not None and day != previous + dt.timedelta(days=1):
                raise InputFileError(
                    path, line, "date",
                    f"{day} does not follow {previous}: days must be consecutive (write 0 for no cases)",
                )
            dates.append(day)
            previous = day
        else:
            try:
                t = int(fields[0])
            except ValueError:
                raise InputFileError(path, line, "t", f"{fields[0]!r} is not a day number") from None
            expected = 1 if previous is None else previous + 1
            if t != expected:
                raise InputFileError(path, line, "t", f"expected day {expected}, found {t}")
            previous = t
        for col, name, text in zip(cols, names[1:], fields[1:], strict=True):
            col.append(_count(path, line, name, text))
    if not cols[0]:
        raise InputFileError(path, None, None, "no data rows after the header")
    if len(cols[0]) < 2:
        raise InputFileError(path, None, None, "need at least 2 days of incidence")
    if names[1] == "cases":
        local, imported = split_first_day_imported(cols[0])
    else:
        local = np.array(cols[0])
        imported = np.array(cols[1]) if len(cols) > 1 else np.zeros_like(local)
    return IncidenceFile(local=local, imported=imported, dates=dates if by_date else None)


def read_si_distr_csv(path: Path) -> np.ndarray:
    """Read ``day,probability`` from day 0, and apply EpiEstim's checks on the distribution."""
    rows = _rows(path)
    header_item = next(rows, None)
    if header_item is None:
        raise InputFileError(path, None, None, "the file is empty")
    _, header = header_item
    if [h.lower() for h in header] != ["day", "probability"]:
        raise InputFileError(path, 1, None, f"header is {','.join(header)!r}; expected day,probability")
    probs: list[float] = []
    for line, fields in rows:
        if len(fields) != 2:
            raise InputFileError(path, line, None, f"expected 2 fields, found {len(fields)}")
        try:
            day = int(fields[0])
        except ValueError:
            raise InputFileError(path, line, "day", f"{fields[0]!r} is not a day number") from None
        if day != len(probs):
            reason = f"expected day {len(probs)}, found {day} (days start at 0)"
            raise InputFileError(path, line, "day", reason)
        try:
            p = float(fields[1])
        except ValueError:
            raise InputFileError(path, line, "probability", f"{fields[1]!r} is not a number") from None
        if not math.isfinite(p) or p < 0:
            raise InputFileError(path, line, "probability", f"{fields[1]} is not a probability")
        if day == 0 and p != 0:
            raise InputFileError(
                path, line, "probability", "day 0 must have probability 0 (nobody infects on their onset day)"
            )
        probs.append(p)
    if not probs:
        raise InputFileError(path, None, None, "no data rows after the header")
    try:
        return check_si_distr(probs)
    except ValueError as exc:
        raise InputFileError(path, None, "probability", str(exc)) from None


def _fmt(value: float) -> str:
    return repr(float(value))


def rt_command(
    incidence: Annotated[
        Path, typer.Option("--incidence", help="CSV: date,local[,imported] or date,cases or t,cases.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the estimates (CSV).")],
    si_mean: Annotated[
        float | None, typer.Option("--si-mean", help="Mean serial interval (days), parametric.")
    ] = None,
    si_sd: Annotated[float | None, typer.Option("--si-sd", help="Serial interval sd (days).")] = None,
    si_distr: Annotated[
        Path | None, typer.Option("--si-distr", help="CSV day,probability from day 0 (non-parametric).")
    ] = None,
    window: Annotated[int, typer.Option("--window", help="Sliding window length in days.")] = 7,
) -> None:
    """Estimate the time-varying reproduction number (Cori et al. 2013, as EpiEstim)."""
    parametric = si_mean is not None or si_sd is not None
    if parametric and si_distr is not None:
        raise typer.BadParameter(
            "give either --si-mean/--si-sd or --si-distr, not both", param_hint="--si-distr"
        )
    if parametric and (si_mean is None or si_sd is None):
        raise typer.BadParameter("--si-mean and --si-sd go together", param_hint="--si-mean/--si-sd")
    if not parametric and si_distr is None:
        raise typer.BadParameter("give --si-mean and --si-sd, or --si-distr", param_hint="--si-distr")
    if parametric and not (si_mean > 1 and si_sd > 0):
        raise typer.BadParameter("need --si-mean > 1 day and --si-sd > 0", param_hint="--si-mean/--si-sd")
    if window < 1:
        raise typer.BadParameter("must be at least 1 day", param_hint="--window")
    try:
        data = read_incidence_csv(incidence)
        si = read_si_distr_csv(si_distr) if si_distr is not None else None
    except InputFileError as exc:
        raise typer.BadParameter(str(exc)) from None
    n_days = data.local.size
    if window > n_days - 1:
        raise typer.BadParameter(
            f"a {window}-day window needs at least {window + 1} days of incidence, the file has {n_days}",
            param_hint="--window",
        )
    try:
        est = estimate_r(data.local, data.imported, si, mean_si=si_mean, std_si=si_sd, window=window)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    columns = est.columns()
    try:
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in est.to_rows():
                writer.writerow([row[c] if c in ("t_start", "t_end") else _fmt(row[c]) for c in columns])
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {out}: {exc.strerror}", param_hint="--out") from None

    console = Console()
    si_label = f"parametric, mean {si_mean:g} sd {si_sd:g}" if parametric else f"from {si_distr}"
    console.print(
        f"[bold]Rt[/bold] over {est.n_windows} windows of {window} days "
        f"({n_days} days of incidence; serial interval {si_label}, mean {est.mean_si:.2f} days)"
    )
    if est.n_windows == 0:
        console.print("[yellow]No window ends after the mean serial interval: nothing to estimate.[/yellow]")
    else:
        last = est.to_rows()[-1]
        lo, hi = est.quantile(0.025)[-1], est.quantile(0.975)[-1]
        span = f"days {last['t_start']}-{last['t_end']}"
        if data.dates is not None:
            span += f" ({data.dates[last['t_start'] - 1]} to {data.dates[last['t_end'] - 1]})"
        if lo > 1:
            verdict = "[red]growing[/red]"
        elif hi < 1:
            verdict = "[green]declining[/green]"
        else:
            verdict = "[yellow]not clearly above or below 1[/yellow]"
        console.print(
            f"Latest window {span}: R = {last['mean_r']:.2f} (95% CrI {lo:.2f}-{hi:.2f}), {verdict}"
        )
    console.print(f"Written to {out}")


def _parse_sizes(text: str) -> list[int]:
    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            k = int(part)
        except ValueError:
            raise typer.BadParameter(f"{part!r} is not a whole number", param_hint="--sizes") from None
        if k < 1:
            raise typer.BadParameter(f"pool size {k} must be at least 1", param_hint="--sizes")
        sizes.append(k)
    return sizes


def _policy_pool_sizes() -> str:
    """The pool sizes the active policy allows (the protocol, not this code, decides them)."""
    from cordon.core.policy import active_policy

    return ",".join(str(k) for k in active_policy().screening.allowed_pool_sizes)


def pool_plan_command(
    prevalence: Annotated[
        float, typer.Option("--prevalence", min=0.0, max=1.0, help="Expected prevalence, as a proportion.")
    ],
    population: Annotated[int, typer.Option("--population", min=0, help="People to screen this round.")],
    sizes: Annotated[
        str | None,
        typer.Option("--sizes", help="Allowed pool sizes, comma-separated (default: the active policy's)."),
    ] = None,
    lab_capacity: Annotated[
        float | None, typer.Option("--lab-capacity", help="Tubes the labs can run per day.")
    ] = None,
) -> None:
    """Plan a screening round: tests, retests and lab days for each allowed pool size."""
    if lab_capacity is not None and lab_capacity <= 0:
        raise typer.BadParameter("must be > 0 tubes per day", param_hint="--lab-capacity")
    plan = plan_pools(prevalence, population, _parse_sizes(sizes or _policy_pool_sizes()), lab_capacity)
    # One column per pool size, so the options read side by side even in a narrow terminal.
    table = Table(title=f"Pool plan: {population:,} people, prevalence {prevalence:.4%}", box=box.SIMPLE_HEAD)
    table.add_column("pool size", no_wrap=True)
    for o in plan.options:
        best = o is plan.recommended
        table.add_column(
            f"{o.pool_size} (best)" if best else str(o.pool_size),
            justify="right",
            no_wrap=True,
            style="bold green" if best else None,
        )
    lines = [
        ("tests per person", [f"{o.tests_per_person:.4f}" for o in plan.options]),
        ("tubes", [f"{o.tubes:,}" for o in plan.options]),
        ("positive pools", [f"{o.expected_positive_pools:,.1f}" for o in plan.options]),
        ("retests", [f"{o.expected_retests:,.0f}" for o in plan.options]),
        ("total tests", [f"{o.expected_total_tests:,.0f}" for o in plan.options]),
    ]
    if lab_capacity is not None:
        lines.append(("lab days", [f"{o.lab_days:.2f}" for o in plan.options]))
    for label, cells in lines:
        table.add_row(label, *cells)
    console = Console()
    console.print(table)
    console.print(
        f"Recommended pool size: [bold]{plan.recommended.pool_size}[/bold] "
        f"({plan.recommended.tests_per_person:.4f} tests per person)"
    )


def register(app: typer.Typer) -> None:
    """Add ``rt`` and ``pool-plan`` to the ``cordon`` command."""
    app.command("rt")(rt_command)
    app.command("pool-plan")(pool_plan_command)
