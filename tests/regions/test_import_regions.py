from __future__ import annotations

import pytest

from cordon.regions.models import Region
from cordon.regions.services import import_regions


@pytest.mark.django_db
def test_regions_import_infers_levels_orders_parents_and_is_idempotent(tmp_path):
    p = tmp_path / "regions.csv"
    # Children before parents, a GBK file, levels and parents left for the importer to infer.
    rows = [
        "区划代码,名称,级别,上级代码,人口",
        "430102001001,幸福社区,,,1200",
        "430102001,东湖街道,,,",
        "430102,芙蓉区,,,",
        "430100,长沙市,,,",
        "430000,湖南省,,,",
        "430102001001001,第1网格,网格,,300",
        "430102002,,,,",  # no name
        "4301020,坏代码,,,",  # bad length
        "430102003,西湖街道,,,1x",  # bad population
        "430199001,孤儿街道,,,",  # parent 430199 missing
    ]
    p.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    errors = tmp_path / "errors.csv"
    s = import_regions(p, errors_path=errors)
    assert (s.accepted, s.rejected) == (6, 4)
    grid = Region.objects.get(code="430102001001001")
    assert grid.level == "grid" and grid.parent_id == "430102001001" and grid.prefix == "430102001001001"
    assert Region.objects.get(code="430102").parent_id == "430100"
    report = errors.read_text(encoding="utf-8-sig")
    for line, field in [(8, "name"), (9, "code"), (10, "population"), (11, "parent_code")]:
        assert f"{line},{field}," in report
    again = import_regions(p)
    assert (again.accepted, again.updated, again.unchanged) == (0, 0, 6)
