"""Demo data of the command centre (runs last): headquarters and groups with the demo users as members,
tasks at every state (some overdue and escalated), an inspection with an accountability action, a week of
published bulletins generated from the demo's cases, and a few tip-offs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction

from cordon.command import aggregate, services
from cordon.command.models import Headquarters, TaskKind, TaskStatus, WorkingGroup
from cordon.regions.models import Level, Region

MEMBERS = [  # username, headquarters region, group code
    ("commander", "430000", "coordination"),
    ("supervisor", "430000", "supervision"),
    ("analyst", "430000", "coordination"),
    ("testing", "430100", "testing"),
    ("isolation", "430100", "isolation"),
    ("investigator", "430102", "tracing"),
    ("investigator2", "430104", "tracing"),
    ("gridworker", "430102", "community"),
]


def _group(region: str, code: str) -> WorkingGroup:
    return WorkingGroup.objects.get(headquarters__region_id=region, code=code)


def extend_demo(ctx: Any) -> None:
    rng, now, users = ctx.rng, ctx.now, ctx.users
    ctx.console.print("command: headquarters and working groups…")
    for region in Region.objects.filter(level__in=[Level.PROVINCE, Level.CITY, Level.COUNTY]).order_by("code"):
        services.ensure_headquarters(region)
    with transaction.atomic():
        for username, region, code in MEMBERS:
            if username in users:
                _group(region, code).members.add(users[username])
    rows = aggregate.rebuild()
    ctx.console.print(f"command: {rows} daily figures aggregated from the demo's cases and contacts")

    cmd = users.get("commander")
    if cmd is None:
        return
    prov = Headquarters.objects.get(region_id="430000")
    changsha = Headquarters.objects.get(region_id="430100")
    furong = Headquarters.objects.get(region_id="430102")
    yuelu = Headquarters.objects.get(region_id="430104")
    inv, inv2, grid = users.get("investigator"), users.get("investigator2"), users.get("gridworker")

    def task(title: str, hq: Headquarters, group: str | None, issued_h: float, due_h: float, kind: str = TaskKind.GENERAL,
             priority: str = "normal", issuer: Headquarters = prov, **kw: Any):  # fmt: skip
        return services.create_task(cmd, title=title, issuer_hq=issuer, issuer_group=_group(issuer.region_id, "coordination"),
                                    assignee_hq=hq, assignee_group=_group(hq.region_id, group) if group else None,
                                    issued_at=now + timedelta(hours=issued_h), due_at=now + timedelta(hours=due_h),
                                    kind=kind, priority=priority, **kw)  # fmt: skip

    ctx.console.print("command: tasks at every state…")
    task("部署第6轮区域核酸检测（长沙市六区）", changsha, "testing", -1, 20, priority="high",
         description="按方案在24小时内完成指定区域全员检测，每2000–3000人设置1个采样点。", context_type="campaign",
         context_label="第6轮")  # fmt: skip
    t = task("核查芙蓉区某小区密接人员落位情况", furong, "tracing", -3, 5, priority="urgent", context_type="area",
             context_label="幸福社区")  # fmt: skip
    services.transition(inv, t, TaskStatus.ACKNOWLEDGED)
    t = task("岳麓区集中隔离点床位扩容评估", yuelu, "isolation", -6, 18)
    if inv2:
        services.transition(inv2, t, TaskStatus.ACKNOWLEDGED)
        services.transition(inv2, t, TaskStatus.IN_PROGRESS)
    t = task("芙蓉区重点场所“四方责任”落实检查", furong, "community", -30, -6)
    services.transition(grid, t, TaskStatus.ACKNOWLEDGED)
    services.transition(grid, t, TaskStatus.DONE, note="已检查农贸市场3处、商超5处，问题2项已当场整改。")
    t = task("调取某航班同排乘客名单", furong, "tracing", -20, -12, priority="high")
    services.transition(inv, t, TaskStatus.REJECTED, reason="该航班乘客名单已由岳麓区调取，重复派发。")
    # overdue: one never acknowledged (escalates up), one acknowledged but not done
    late1 = task("芙蓉区次密接转运（12小时）", furong, "isolation", -20, -8, kind=TaskKind.TRANSFER, priority="urgent",
                 issuer=furong, context_type="area", context_label="东湖街道")  # fmt: skip
    late2 = task("岳麓区流调报告补充轨迹", yuelu, "tracing", -30, -2, kind=TaskKind.INVESTIGATION, priority="high")
    if inv2:
        services.transition(inv2, late2, TaskStatus.ACKNOWLEDGED)
    task("全省防疫物资库存日报", prov, "supplies", -2, 22)
    counts = services.tick(now)
    ctx.console.print(f"command: tick — {counts}")

    sup = users.get("supervisor")
    if sup is not None:
        ctx.console.print("command: an inspection and an accountability action…")
        ins = services.record_inspection(sup, region_code="430102", unit="芙蓉区转运隔离组", day=ctx.today - timedelta(days=1),
                                         findings="次密接转运超过12小时时限；转运登记不全。",
                                         rectification_due=ctx.today + timedelta(days=2))  # fmt: skip
        services.record_inspection(sup, region_code="430104", unit="岳麓区某集中隔离点", day=ctx.today - timedelta(days=2),
                                   findings="环境采样记录缺失2天。", rectification_due=ctx.today)  # fmt: skip
        services.record_accountability(sup, region_code="430102", kind="talk", subject="芙蓉区转运隔离组负责人",
                                       description="次密接转运超时，约谈提醒并限期整改。", day=ctx.today,
                                       inspection=ins, tasks=[late1])  # fmt: skip

    ctx.console.print("command: bulletins for the last 7 days…")
    for back in range(7, 0, -1):
        day = ctx.today - timedelta(days=back)
        b = services.generate_bulletin(cmd, "430000", day)
        services.review_bulletin(cmd, b)
        services.publish_bulletin(cmd, b)
        if back == 3:  # one corrected day: the correction is a new version, the first kept
            c = services.correct_bulletin(cmd, b, "核对后更正：补报前一日订正数据")
            services.review_bulletin(cmd, c)
            services.publish_bulletin(cmd, c)
    services.generate_bulletin(cmd, "430100", ctx.today - timedelta(days=1))  # a city draft awaiting review

    ctx.console.print("command: tip-offs…")
    tips = [
        ("gathering", "430102", "芙蓉区某小区棋牌室", "每晚有十多人聚集打牌，均未佩戴口罩。"),
        ("concealment", "430104", "岳麓区某街道", "邻居从中风险地区返回后未向社区报备，也未做核酸。"),
        ("violation", "430111", "雨花区某商场", "商场入口未查验场所码和核酸证明。"),
    ]
    made = []
    for cat, region, place, text in tips:
        if Region.objects.filter(code=region).exists():
            made.append(services.submit_tipoff(category=cat, region_code=region, place=place, description=text))
    if made and rng is not None:
        services.triage_tipoff(cmd, made[0], decision="task", group=_group("430102", "community"),
                               due_at=now + timedelta(hours=12))  # fmt: skip
