"""AP at matched latency: does a model beat the other families at the same int8 latency?

The question a phone team asks of ``mobile-spinenet compare``'s table. For each thread count, the
models of one family measured in the same run make that family's latency-AP curve (its points
joined by straight lines; a family compared at several input sizes, ``ID@SIZE``, has several
points). Every model is compared with the curve of each other family at its own latency:

- inside the curve's latency range: the difference to the AP interpolated there, and whether it
  exceeds two standard deviations of the difference (the model's seed spread and the curve's,
  interpolated from its two neighbours) when the spreads are known;
- outside it: no extrapolation. The model wins only if it is both faster and more accurate than
  the curve's nearest point (it *dominates* it), loses only if that point dominates it, and is
  undecided otherwise (a slower, more accurate model needs a slower point of the other family).

Pure functions of the report's rows (:func:`mobile_spinenet.eval.compare_report.table_rows`)."""
from __future__ import annotations

import math
from typing import Optional


def row_family(row: dict) -> str:
    """The display name of a row's family (``family``, else found from its entry name)."""
    if row.get("family"):
        return row["family"]
    from mobile_spinenet.eval.entries import model_id_of
    from mobile_spinenet.registry import family_of
    return family_of(model_id_of(row["model"])).display


def bracket(points: list, latency: float) -> Optional[tuple]:
    """Indices ``(i, j)`` of the neighbours in ``points`` (sorted by latency) whose latencies enclose
    ``latency`` (``i == j`` at a point's own latency); None outside the points' latency range."""
    for index, (x, _) in enumerate(points):
        if x == latency:
            return index, index
        if x > latency:
            return (index - 1, index) if index > 0 else None
    return None


def _weight(start: tuple, end: tuple, latency: float) -> float:
    """How far ``latency`` lies from ``start`` towards ``end`` (0..1)."""
    (x0, _), (x1, _) = start, end
    return 0.0 if x1 == x0 else (latency - x0) / (x1 - x0)


def _on_line(start: tuple, end: tuple, latency: float) -> float:
    w = _weight(start, end, latency)
    return (1 - w) * start[1] + w * end[1]


def interpolate(points: list, latency: float) -> Optional[float]:
    """The AP of the piecewise-linear curve through ``points`` ((latency, AP), any order) at
    ``latency``; None outside the points' latency range."""
    points = sorted(points)
    found = bracket(points, latency)
    return None if found is None else _on_line(points[found[0]], points[found[1]], latency)


def interpolated_sd(sd_start: Optional[float], sd_end: Optional[float], weight: float) -> Optional[float]:
    """The standard deviation of ``(1 - w) * a + w * b`` for independent a and b (None if one is unknown)."""
    if weight == 0.0:
        return sd_start
    if weight == 1.0:
        return sd_end
    if sd_start is None or sd_end is None:
        return None
    return math.sqrt(((1 - weight) * sd_start) ** 2 + (weight * sd_end) ** 2)


def dominates(a: dict, b: dict, threads: int) -> bool:
    """Whether row ``a`` is at least as fast and as accurate as row ``b``, and better in one."""
    la, lb = a["latency_ms"][threads], b["latency_ms"][threads]
    return la <= lb and a["int8_ap"] >= b["int8_ap"] and (la < lb or a["int8_ap"] > b["int8_ap"])


def curves(rows: list, threads: int) -> dict:
    """``{family: its rows timed at threads, fastest first}``."""
    found: dict = {}
    for row in rows:
        if row["latency_ms"].get(threads):
            found.setdefault(row_family(row), []).append(row)
    return {family: sorted(members, key=lambda r: r["latency_ms"][threads]) for family, members in found.items()}


def _noise_phrase(tested: dict) -> str:
    """How a difference compares with its 2-sd threshold (:func:`~mobile_spinenet.eval.significance.significance`)."""
    if tested["significant"] is None:
        return ""
    if tested["significant"]:
        return f", beyond 2 sd ({tested['threshold']:.2f})"
    return f", within 2 sd ({tested['threshold']:.2f}): not a result"


def _inside(row: dict, curve: list, points: list, found_at: tuple, threads: int) -> dict:
    from mobile_spinenet.eval.significance import significance

    below, above = curve[found_at[0]], curve[found_at[1]]
    start, end, latency = points[found_at[0]], points[found_at[1]], row["latency_ms"][threads]
    at_curve = _on_line(start, end, latency)
    curve_sd = interpolated_sd(below.get("int8_ap_sd"), above.get("int8_ap_sd"), _weight(start, end, latency))
    tested = significance(row["int8_ap"], row.get("int8_ap_sd"), at_curve, curve_sd)
    difference = tested["difference"]
    names = below["model"] if below is above else f"{below['model']}..{above['model']}"
    return {"reference": f"interpolated ({names})", "reference_ap": at_curve, **tested,
            "verdict": f"{'wins' if difference > 0 else 'loses'} by {abs(difference):.2f} AP{_noise_phrase(tested)}"}


def _outside(row: dict, curve: list, points: list, family: str, threads: int) -> dict:
    latency, ap = row["latency_ms"][threads], row["int8_ap"]
    nearest = curve[0] if latency < points[0][0] else curve[-1]
    entry = {"reference": f"nearest: {nearest['model']} ({nearest['latency_ms'][threads]:.2f} ms)",
             "reference_ap": nearest["int8_ap"], "difference": None, "threshold": None, "significant": None}
    if dominates(row, nearest, threads):
        entry["verdict"] = f"wins: faster than {nearest['model']} and {ap - nearest['int8_ap']:+.2f} AP"
    elif dominates(nearest, row, threads):
        entry["verdict"] = f"loses: {nearest['model']} is faster and {nearest['int8_ap'] - ap:+.2f} AP"
    else:
        side = "faster" if latency < points[0][0] else "slower"
        entry["verdict"] = (f"undecided: {side} than every {family} here "
                            f"({latency / nearest['latency_ms'][threads]:.2f}x {nearest['model']}'s latency, "
                            f"{ap - nearest['int8_ap']:+.2f} AP); a {side} {family} point would decide it")
    return entry


def matched_latency(rows: list, threads: tuple) -> list:
    """One entry per (model, thread count, other family with a curve at that thread count):
    ``against`` (the family), ``reference`` (how its AP was found), ``reference_ap``, ``difference``
    (model minus curve; None outside the curve), ``threshold`` (2 sd of the difference, None when a
    spread is unknown), ``significant`` and ``verdict``."""
    found = []
    for t in threads:
        by_family = curves(rows, t)
        for family, members in by_family.items():
            for row in members:
                for other, curve in by_family.items():
                    if other == family:
                        continue
                    points = [(r["latency_ms"][t], r["int8_ap"]) for r in curve]
                    entry = {"model": row["model"], "family": family, "threads": t, "against": other,
                             "latency_ms": row["latency_ms"][t], "int8_ap": row["int8_ap"]}
                    found_at = bracket(points, row["latency_ms"][t])
                    entry.update(_inside(row, curve, points, found_at, t) if found_at is not None
                                 else _outside(row, curve, points, other, t))
                    found.append(entry)
    return found


def undecided(matched: list) -> list:
    """``(model, threads)`` pairs that no other family's curve decides (undecided against every one)."""
    decided, seen = set(), []
    for entry in matched:
        key = (entry["model"], entry["threads"])
        if key not in seen:
            seen.append(key)
        if not entry["verdict"].startswith("undecided"):
            decided.add(key)
    return [key for key in seen if key not in decided]


def frontier(rows: list, threads: int) -> list:
    """The models no other model dominates at ``threads`` (the best AP for its latency), fastest first."""
    timed = [r for r in rows if r["latency_ms"].get(threads)]
    best = [r for r in timed if not any(dominates(other, r, threads) for other in timed if other is not r)]
    return [r["model"] for r in sorted(best, key=lambda r: r["latency_ms"][threads])]
