"""AP at matched latency: does a model beat MobileNetV3-SSDLite at the same int8 latency?

The question a phone team asks of ``mobile-spinenet compare``'s table. For each thread count, the
SSDLite models measured in the same run make a latency-AP curve (their points joined by straight
lines). Every other model is compared with that curve at its own latency:

- inside the curve's latency range: the difference to the AP interpolated there;
- outside it: no extrapolation. The model wins only if it is both faster and more accurate than
  the nearest SSDLite (it *dominates* it), loses only if that SSDLite dominates it, and is
  undecided otherwise (a slower, more accurate model needs a slower SSDLite to be judged).

Pure functions of the report's rows (:func:`mobile_spinenet.eval.compare_report.table_rows`)."""
from __future__ import annotations

from typing import Optional

REFERENCE_FAMILY = "ssdlite"


def _family(model: str) -> str:
    from mobile_spinenet.registry import family_of
    return family_of(model).name


def bracket(points: list, latency: float) -> Optional[tuple]:
    """Indices ``(i, j)`` of the neighbours in ``points`` (sorted by latency) whose latencies enclose
    ``latency`` (``i == j`` at a point's own latency); None outside the points' latency range."""
    for index, (x, _) in enumerate(points):
        if x == latency:
            return index, index
        if x > latency:
            return (index - 1, index) if index > 0 else None
    return None


def _on_line(start: tuple, end: tuple, latency: float) -> float:
    (x0, y0), (x1, y1) = start, end
    return y0 if x1 == x0 else y0 + (y1 - y0) * (latency - x0) / (x1 - x0)


def interpolate(points: list, latency: float) -> Optional[float]:
    """The AP of the piecewise-linear curve through ``points`` ((latency, AP), any order) at
    ``latency``; None outside the points' latency range."""
    points = sorted(points)
    found = bracket(points, latency)
    return None if found is None else _on_line(points[found[0]], points[found[1]], latency)


def dominates(a: dict, b: dict, threads: int) -> bool:
    """Whether row ``a`` is at least as fast and as accurate as row ``b``, and better in one."""
    la, lb = a["latency_ms"][threads], b["latency_ms"][threads]
    return la <= lb and a["int8_ap"] >= b["int8_ap"] and (la < lb or a["int8_ap"] > b["int8_ap"])


def matched_latency(rows: list, threads: tuple) -> list:
    """One entry per (non-SSDLite model, thread count) with an int8 latency, against the SSDLite
    curve of the same thread count: ``reference`` (how the SSDLite AP was found), ``reference_ap``,
    ``difference`` (model minus SSDLite, None when outside the curve and undecided) and ``verdict``."""
    found = []
    for t in threads:
        timed = [r for r in rows if r["latency_ms"].get(t)]
        curve = [r for r in timed if _family(r["model"]) == REFERENCE_FAMILY]
        if not curve:
            continue
        curve.sort(key=lambda r: r["latency_ms"][t])
        points = [(r["latency_ms"][t], r["int8_ap"]) for r in curve]
        for row in timed:
            if _family(row["model"]) == REFERENCE_FAMILY:
                continue
            latency, ap = row["latency_ms"][t], row["int8_ap"]
            entry = {"model": row["model"], "threads": t, "latency_ms": latency, "int8_ap": ap}
            found_at = bracket(points, latency)
            if found_at is not None:
                below, above = curve[found_at[0]], curve[found_at[1]]
                at_curve = _on_line(points[found_at[0]], points[found_at[1]], latency)
                names = below["model"] if below is above else f"{below['model']}..{above['model']}"
                difference = ap - at_curve
                entry.update(reference=f"interpolated ({names})", reference_ap=at_curve, difference=difference,
                             verdict=f"{'wins' if difference > 0 else 'loses'} by {abs(difference):.2f} AP")
            else:
                nearest = curve[0] if latency < points[0][0] else curve[-1]
                entry.update(reference=f"nearest: {nearest['model']} ({nearest['latency_ms'][t]:.2f} ms)",
                             reference_ap=nearest["int8_ap"], difference=None)
                if dominates(row, nearest, t):
                    entry["verdict"] = (f"wins: faster than {nearest['model']} and {ap - nearest['int8_ap']:+.2f} AP")
                elif dominates(nearest, row, t):
                    entry["verdict"] = (f"loses: {nearest['model']} is faster and {nearest['int8_ap'] - ap:+.2f} AP")
                else:
                    side = "faster" if latency < points[0][0] else "slower"
                    entry["verdict"] = (f"undecided: {side} than every SSDLite here "
                                        f"({latency / nearest['latency_ms'][t]:.2f}x {nearest['model']}'s latency, "
                                        f"{ap - nearest['int8_ap']:+.2f} AP)")
            found.append(entry)
    return found


def frontier(rows: list, threads: int) -> list:
    """The models no other model dominates at ``threads`` (the best AP for its latency), fastest first."""
    timed = [r for r in rows if r["latency_ms"].get(threads)]
    best = [r for r in timed if not any(dominates(other, r, threads) for other in timed if other is not r)]
    return [r["model"] for r in sorted(best, key=lambda r: r["latency_ms"][threads])]
