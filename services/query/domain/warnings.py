"""How a spend warning reads (pure): the one rendering that ``GET /v1/warnings``, the warnings topic and the
billing side's webhooks send."""

from __future__ import annotations

from schemas.money import yuan_text
from services.query.domain.labels import meter_name


def warning_out(r, lang: str = "zh") -> dict:
    spend, median = yuan_text(r["spend"]), yuan_text(r["median"])
    name, meter = r["department_name"], meter_name(r["meter"], lang)
    z = format(r["robust_z"], "f")
    if lang == "zh":
        message = (f"{name}{r['day']}的{meter}支出{spend}元，显著高于前14天的中位数{median}元"
                   f"（稳健Z值{z}，超过阈值{r['threshold']}）")
    else:
        message = (f"{name} spent {spend} yuan on {meter} on {r['day']}, far above its 14-day median of {median} "
                   f"yuan (robust z {z} > {r['threshold']})")
    return {
        "id": r["id"], "day": r["day"].isoformat(), "department_id": r["department_id"], "department_name": name,
        "meter": r["meter"], "meter_name": meter, "spend": spend, "median": median,
        "mad": format(r["mad"], "f"), "mad_used": format(r["mad_used"], "f"), "robust_z": z,
        "threshold": format(r["threshold"], "f"), "baseline": r["baseline"], "message": message,
        "created_at": r["created_at"].isoformat(),
    }
