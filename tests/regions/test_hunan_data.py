"""Checks on cordon/regions/data/hunan.csv (pure: csv module only, no Django).

The file is reference data the demo province and real Hunan deployments load, so its shape is
tested here rather than trusted. Sources:

* codes and names: modood/Administrative-divisions-of-China, dist/provinces.csv, dist/cities.csv
  and dist/areas.csv (National Bureau of Statistics division codes, whose first six digits are the
  GB/T 2260 codes). The 14 statistical pseudo-units that list carries for Hunan (codes with 7 in
  the fifth digit: development zones, high-tech parks and management areas such as 430271
  云龙示范区 or 430671 岳阳市屈原管理区) are not county-level divisions and are left out.
* population: 2020 (seventh) census resident population, Hunan Provincial Bureau of Statistics,
  census bulletin no. 2 (2021-05-19), for the province and the 14 prefecture-level divisions;
  county populations are left empty because no official figure was at hand.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "cordon" / "regions" / "data" / "hunan.csv"
HEADER = ["code", "name", "name_en", "level", "parent_code", "population"]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == HEADER
        return list(reader)


@pytest.fixture(scope="module")
def by_code(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["code"]: row for row in rows}


def test_level_counts(rows: list[dict[str, str]]) -> None:
    counts = Counter(row["level"] for row in rows)
    assert counts == {"province": 1, "city": 14, "county": 122}


def test_codes_are_six_digits_and_unique(rows: list[dict[str, str]]) -> None:
    codes = [row["code"] for row in rows]
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert len(codes) == len(set(codes))
    assert all(code.startswith("43") for code in codes)


def test_no_exact_duplicate_rows(rows: list[dict[str, str]]) -> None:
    keys = [tuple(row.values()) for row in rows]
    assert len(keys) == len(set(keys))


def test_hierarchy(rows: list[dict[str, str]], by_code: dict[str, dict[str, str]]) -> None:
    expected_parent_level = {"city": "province", "county": "city"}
    for row in rows:
        if row["level"] == "province":
            assert row["parent_code"] == ""
            assert row["code"] == "430000"
            continue
        parent = by_code.get(row["parent_code"])
        assert parent is not None, f"{row['code']} has no parent {row['parent_code']}"
        assert parent["level"] == expected_parent_level[row["level"]]
        if row["level"] == "city":
            assert row["code"].endswith("00") and row["code"][:2] == parent["code"][:2]
        else:
            assert row["code"][:4] == parent["code"][:4], row
            assert not row["code"].endswith("00")


def test_no_statistical_pseudo_units(rows: list[dict[str, str]]) -> None:
    # 4301 7x-style codes (development zones, management areas) are not GB/T 2260 divisions.
    assert not [row["code"] for row in rows if row["level"] == "county" and row["code"][4] == "7"]


def test_names_unique_within_parent(rows: list[dict[str, str]]) -> None:
    for field in ("name", "name_en"):
        seen = Counter((row["parent_code"], row[field]) for row in rows)
        assert [key for key, n in seen.items() if n > 1] == [], field
    assert all(row["name"] and row["name_en"] for row in rows)


def test_county_counts_per_city(rows: list[dict[str, str]], by_code: dict[str, dict[str, str]]) -> None:
    per_city = Counter(by_code[row["parent_code"]]["name"] for row in rows if row["level"] == "county")
    assert per_city == {
        "长沙市": 9,
        "株洲市": 9,
        "湘潭市": 5,
        "衡阳市": 12,
        "邵阳市": 12,
        "岳阳市": 9,
        "常德市": 9,
        "张家界市": 4,
        "益阳市": 6,
        "郴州市": 11,
        "永州市": 11,
        "怀化市": 12,
        "娄底市": 5,
        "湘西土家族苗族自治州": 8,
    }


@pytest.mark.parametrize(
    "code, name, name_en, parent",
    [
        ("430000", "湖南省", "Hunan", ""),
        ("430100", "长沙市", "Changsha", "430000"),
        ("430102", "芙蓉区", "Furong District", "430100"),
        ("430103", "天心区", "Tianxin District", "430100"),
        ("430104", "岳麓区", "Yuelu District", "430100"),
        ("430105", "开福区", "Kaifu District", "430100"),
        ("430111", "雨花区", "Yuhua District", "430100"),
        ("430112", "望城区", "Wangcheng District", "430100"),
        ("430121", "长沙县", "Changsha County", "430100"),
        ("430181", "浏阳市", "Liuyang City", "430100"),
        ("430182", "宁乡市", "Ningxiang City", "430100"),
        ("433100", "湘西土家族苗族自治州", "Xiangxi Tujia and Miao Autonomous Prefecture", "430000"),
        ("433101", "吉首市", "Jishou City", "433100"),
        ("431181", "祁阳市", "Qiyang City", "431100"),
        ("430582", "邵东市", "Shaodong City", "430500"),
    ],
)
def test_known_rows(
    by_code: dict[str, dict[str, str]], code: str, name: str, name_en: str, parent: str
) -> None:
    row = by_code[code]
    assert (row["name"], row["name_en"], row["parent_code"]) == (name, name_en, parent)


def test_population(rows: list[dict[str, str]], by_code: dict[str, dict[str, str]]) -> None:
    for row in rows:
        if row["population"]:
            assert row["population"].isdigit() and int(row["population"]) > 0
    cities = [row for row in rows if row["level"] == "city"]
    assert all(row["population"] for row in cities)
    assert int(by_code["430000"]["population"]) == 66_444_864
    assert sum(int(row["population"]) for row in cities) == int(by_code["430000"]["population"])
    assert int(by_code["430100"]["population"]) == 10_047_914
