"""Loading the administrative tree from files. Codes carry the hierarchy, so level and parent are inferred
when a file leaves them out, and a child listed before its parent waits for it rather than failing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction

from cordon.core import audit
from cordon.core.importing import Column, ErrorReport, ImportSummary, RowError, TabularFile
from cordon.regions.models import CODE_LENGTH, Level, Region, subtree_prefix

COLUMNS = [
    Column("code", ("区划代码", "code", "代码", "行政区划代码"), required=True),
    Column("name", ("名称", "name", "区划名称"), required=True),
    Column("name_en", ("英文名称", "name_en", "英文名")),
    Column("level", ("级别", "level", "层级")),
    Column("parent_code", ("上级代码", "parent_code", "上级区划代码")),
    Column("population", ("人口", "population", "常住人口")),
]
_LEVEL_WORDS = {
    "省": Level.PROVINCE, "市": Level.CITY, "地级": Level.CITY, "县": Level.COUNTY, "区县": Level.COUNTY,
    "乡镇": Level.TOWNSHIP, "街道": Level.TOWNSHIP, "乡镇街道": Level.TOWNSHIP, "社区": Level.COMMUNITY,
    "村": Level.COMMUNITY, "社区村": Level.COMMUNITY, "网格": Level.GRID,
}  # fmt: skip


def infer_level(code: str) -> Level:
    if len(code) == 15:
        return Level.GRID
    if len(code) == 12:
        return Level.COMMUNITY
    if len(code) == 9:
        return Level.TOWNSHIP
    if code.endswith("0000"):
        return Level.PROVINCE
    if code.endswith("00"):
        return Level.CITY
    return Level.COUNTY


def infer_parent(code: str, level: Level) -> str | None:
    if level == Level.PROVINCE:
        return None
    if level == Level.CITY:
        return code[:2] + "0000"
    if level == Level.COUNTY:
        return code[:4] + "00"
    return code[: CODE_LENGTH[level] - 3]


def parse_level(text: str, code: str) -> Level:
    t = (text or "").strip()
    if not t:
        return infer_level(code)
    try:
        return Level(t.lower())
    except ValueError:
        pass
    if t in _LEVEL_WORDS:
        return _LEVEL_WORDS[t]
    raise ValueError("unknown level (province, city, county, township, community, grid)")


def import_regions(
    path: str | Path,
    *,
    user: Any = None,
    errors_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    source = TabularFile(path, COLUMNS)
    report = ErrorReport(errors_path)
    summary = ImportSummary()
    pending: list[tuple[int, dict[str, Any]]] = []
    for line, row in source.rows():
        code = row["code"].strip()
        try:
            if not code.isdigit() or len(code) not in (6, 9, 12, 15):
                raise ValueError("a region code has 6, 9, 12 or 15 digits")
            level = parse_level(row.get("level", ""), code)
            if CODE_LENGTH[level] != len(code):
                raise ValueError(f"a {level.value} code has {CODE_LENGTH[level]} digits")
        except ValueError as exc:
            report.add(
                RowError(line, "code" if "digit" in str(exc) else "level", code or row.get("level", ""), str(exc))
            )
            summary.rejected += 1
            continue
        name = row["name"].strip()
        if not name:
            report.add(RowError(line, "name", "", "required"))
            summary.rejected += 1
            continue
        pop_raw = (row.get("population") or "").replace(",", "").strip()
        if pop_raw and not pop_raw.isdigit():
            report.add(RowError(line, "population", pop_raw, "not a whole number"))
            summary.rejected += 1
            continue
        parent = (row.get("parent_code") or "").strip() or infer_parent(code, level)
        pending.append((line, {
            "code": code, "name": name, "name_en": (row.get("name_en") or "").strip(), "level": level.value,
            "parent_id": parent, "population": int(pop_raw) if pop_raw else None,
        }))  # fmt: skip
    # Parents first: a file sorted any other way still loads.
    order = {lv: i for i, lv in enumerate(Level)}
    pending.sort(key=lambda item: (order[Level(item[1]["level"])], item[1]["code"]))
    known = set(Region.objects.values_list("code", flat=True))
    with transaction.atomic():
        changed_codes: list[str] = []
        done = 0
        for line, data in pending:
            if data["parent_id"] and data["parent_id"] not in known:
                report.add(RowError(line, "parent_code", data["parent_id"], "parent region not found"))
                summary.rejected += 1
                continue
            existing = Region.objects.filter(code=data["code"]).first()
            if existing is None:
                Region(**data).save()
                summary.accepted += 1
                changed_codes.append(data["code"])
            elif any(getattr(existing, k) != v for k, v in data.items()):
                for k, v in data.items():
                    setattr(existing, k, v)
                existing.save()
                summary.updated += 1
                changed_codes.append(data["code"])
            else:
                summary.unchanged += 1
            known.add(data["code"])
            done += 1
            if progress and done % 500 == 0:
                progress(done)
        if changed_codes:
            audit.record(user or "import", "regions.import", object_type="regions.region",
                         object_id=Path(path).name, changes={"codes": len(changed_codes),
                                                              "first": changed_codes[0], "last": changed_codes[-1]})  # fmt: skip
    summary.errors = report.close()
    return summary


def bulk_create_regions(rows: list[Region]) -> None:
    """For generated trees (the demo): prefixes set here because bulk_create skips save()."""
    for r in rows:
        r.prefix = subtree_prefix(r.code, r.level)
    Region.objects.bulk_create(rows, batch_size=2000)
