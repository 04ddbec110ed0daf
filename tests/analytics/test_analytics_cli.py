"""`cordon rt` and `cordon pool-plan` through Typer's test runner, on a fresh app."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cordon.analytics.commands import register

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "rt"
runner = CliRunner()


@pytest.fixture()
def app() -> typer.Typer:
    fresh = typer.Typer()
    register(fresh)
    return fresh


def _flat(text: str) -> str:
    """The output without Rich's panel borders and line wrapping, for matching messages."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.skipif(not REF.is_dir(), reason=f"EpiEstim reference data not found at {REF}")
def test_rt_reproduces_epiestim_from_files(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "rt.csv"
    result = runner.invoke(
        app,
        ["rt", "--incidence", str(REF / "flu2009_incidence.csv"), "--si-distr",
         str(REF / "flu2009_si_distr.csv"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "25 windows" in result.output
    rows = _read_rows(out)
    expected = _read_rows(REF / "flu2009_example1_nonparametric_si.csv")
    assert list(rows[0]) == ["t_start", "t_end", "mean_r", "std_r", "q025", "q05", "q25", "median", "q75",
                             "q95", "q975"]
    for mine, theirs in zip(rows, expected, strict=True):
        for column, value in theirs.items():
            assert float(mine[column]) == pytest.approx(float(value), rel=1e-6)


@pytest.mark.skipif(not REF.is_dir(), reason=f"EpiEstim reference data not found at {REF}")
def test_rt_parametric_with_t_cases_input(app: typer.Typer, tmp_path: Path) -> None:
    cases = [r["cases"] for r in _read_rows(REF / "flu2009_incidence.csv")]
    inc = _write(tmp_path / "t.csv", "t,cases\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cases, 1)))
    out = tmp_path / "rt.csv"
    result = runner.invoke(app, ["rt", "--incidence", str(inc), "--si-mean", "2.6", "--si-sd", "1.5",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = _read_rows(REF / "flu2009_example3_parametric_si.csv")
    for mine, theirs in zip(_read_rows(out), expected, strict=True):
        for column, value in theirs.items():
            assert float(mine[column]) == pytest.approx(float(value), rel=1e-6)


def test_rt_with_local_and_imported_columns(app: typer.Typer, tmp_path: Path) -> None:
    lines = ["date,local,imported"] + [f"2022-03-{d:02d},{d},{1 if d % 5 == 0 else 0}" for d in range(1, 21)]
    inc = _write(tmp_path / "inc.csv", "\n".join(lines) + "\n")
    out = tmp_path / "rt.csv"
    result = runner.invoke(app, ["rt", "--incidence", str(inc), "--si-mean", "3", "--si-sd", "1.5",
                                 "--window", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _read_rows(out)
    assert rows[0]["t_start"] == "2" and rows[0]["t_end"] == "6" and len(rows) == 15
    assert "2022-03-16 to 2022-03-20" in _flat(result.output)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty"),
        ("date,local\n", "no data rows"),
        ("day,count\n1,2\n", "line 1"),
        ("date,local\n2022-01-01,3\n2022-01-02,-1\n", "line 3, field 'local': -1 is negative"),
        ("date,local\n2022-01-01,3\n2022-01-02,2.5\n", "line 3, field 'local'"),
        ("date,local\n2022-01-01,3\n2022-01-03,2\n", "line 3, field 'date'"),
        ("date,local\n2022-01-01,3\n2022-13-02,2\n", "line 3, field 'date'"),
        ("date,local,imported\n2022-01-01,3,0\n2022-01-02,2\n", "line 3"),
        ("t,cases\n1,3\n3,2\n", "line 3, field 't'"),
    ],
)
def test_rt_bad_incidence_file(app: typer.Typer, tmp_path: Path, content: str, needle: str) -> None:
    inc = _write(tmp_path / "inc.csv", content)
    result = runner.invoke(app, ["rt", "--incidence", str(inc), "--si-mean", "2.6", "--si-sd", "1.5",
                                 "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert needle in _flat(result.output)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("day,probability\n0,0\n1,0.5\n2,0.3\n", "sum to 1"),
        ("day,probability\n0,0.1\n1,0.9\n", "line 2, field 'probability'"),
        ("day,probability\n0,0\n2,1\n", "line 3, field 'day'"),
        ("day,probability\n0,0\n1,x\n", "line 3, field 'probability'"),
        ("", "empty"),
    ],
)
def test_rt_bad_si_file(app: typer.Typer, tmp_path: Path, content: str, needle: str) -> None:
    inc = _write(tmp_path / "inc.csv", "t,cases\n" + "".join(f"{t},{t}\n" for t in range(1, 15)))
    si = _write(tmp_path / "si.csv", content)
    result = runner.invoke(app, ["rt", "--incidence", str(inc), "--si-distr", str(si),
                                 "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert needle in _flat(result.output)


def test_rt_option_errors(app: typer.Typer, tmp_path: Path) -> None:
    inc = _write(tmp_path / "inc.csv", "t,cases\n" + "".join(f"{t},{t}\n" for t in range(1, 8)))
    si = _write(tmp_path / "si.csv", "day,probability\n0,0\n1,1\n")
    out = str(tmp_path / "o.csv")
    cases = [
        (["--si-mean", "2.6", "--si-sd", "1.5", "--window", "7"], "needs at least 8 days"),
        (["--si-mean", "2.6"], "go together"),
        (["--si-mean", "2.6", "--si-sd", "1.5", "--si-distr", str(si)], "not both"),
        ([], "--si-distr"),
        (["--si-mean", "0.5", "--si-sd", "1.5"], "> 1 day"),
    ]
    for extra, needle in cases:
        result = runner.invoke(app, ["rt", "--incidence", str(inc), "--out", out, *extra])
        assert result.exit_code == 2, extra
        assert needle in _flat(result.output), extra


def test_rt_missing_file(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["rt", "--incidence", str(tmp_path / "nope.csv"), "--si-mean", "2.6",
                                 "--si-sd", "1.5", "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "cannot open" in _flat(result.output)


def test_pool_plan_table(app: typer.Typer) -> None:
    result = runner.invoke(
        app, ["pool-plan", "--prevalence", "0.001", "--population", "100000", "--lab-capacity", "20000"],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert "Recommended pool size: 20" in text
    assert "lab days" in text
    assert "5,000" in text  # tubes with pools of 20


def test_pool_plan_sizes_and_errors(app: typer.Typer) -> None:
    ok = runner.invoke(
        app, ["pool-plan", "--prevalence", "0.05", "--population", "1000", "--sizes", "1,5,10"]
    )
    assert ok.exit_code == 0, ok.output
    assert "Recommended pool size: 5" in _flat(ok.output)
    bad = runner.invoke(app, ["pool-plan", "--prevalence", "0.05", "--population", "1000", "--sizes", "5,x"])
    assert bad.exit_code == 2 and "'x' is not a whole number" in _flat(bad.output)
    out_of_range = runner.invoke(app, ["pool-plan", "--prevalence", "1.5", "--population", "1000"])
    assert out_of_range.exit_code == 2
