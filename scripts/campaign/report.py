"""The report card: per row (class, or realistic workload) the four
probabilities with their 95 % Wilson intervals, the latency p50/p99, the
false-alarm rate per hour of clean load with its interval; one line per
miss; the results directory that keeps each injection's records; and the
check against the floors of the CI's short form."""
import json
import os

from . import stats


def aggregate(runs, rows):
    """{row: {n, d, l, lat, h_n, h, s}} in the order of `rows`."""
    out = {}
    for row in rows:
        mine = [r for r in runs if r.row == row]
        handled = [r for r in mine if r.handled is not None]
        out[row] = {
            "n": len(mine),
            "d": sum(r.detected for r in mine),
            "l": sum(r.located for r in mine),
            "lat": [r.latency_ms for r in mine if r.latency_ms is not None],
            "h_n": len(handled),
            "h": sum(bool(r.handled) for r in handled),
            "s": sum(bool(r.recovered) for r in handled),
        }
    return out


def _ms(v):
    if v is None:
        return "-"
    return "%.0f ms" % v if v < 10000 else "%.1f s" % (v / 1000)


def table(agg, notes, lanes):
    head = "%-22s %4s %-18s %-18s %9s %9s %-18s %-18s %s" % (
        "row", "n", "P(D|F) [95% CI]", "P(L|F) [95% CI]", "lat p50", "lat p99", "P(R|F) [95% CI]",
        "P(S|F) [95% CI]", "lane")
    lines = [head]
    for row, a in agg.items():
        w = lambda k, n: stats.fmt_prop(stats.wilson(a[k], a[n]))  # noqa: E731
        lines.append("%-22s %4d %-18s %-18s %9s %9s %-18s %-18s %s" % (
            row, a["n"], w("d", "n"), w("l", "n"), _ms(stats.percentile(a["lat"], 0.5)),
            _ms(stats.percentile(a["lat"], 0.99)), w("h", "h_n") if a["h_n"] else "n/a (no policy)",
            w("s", "h_n") if a["h_n"] else "n/a", lanes.get(row, "")))
    for row, why in notes.items():
        lines.append("%-22s %4s %s" % (row, "-", "not measured: " + why))
    return lines


def totals(agg, rows):
    t = {"n": 0, "d": 0, "l": 0, "lat": [], "h_n": 0, "h": 0, "s": 0}
    for row in rows:
        a = agg.get(row)
        if not a:
            continue
        for k in ("n", "d", "l", "h_n", "h", "s"):
            t[k] += a[k]
        t["lat"] += a["lat"]
    return t


def false_alarm_lines(alarms, seconds, rules="the campaign's rules"):
    rate = stats.poisson_rate(len(alarms), seconds)
    out = ["clean load %d s, %s: %d false alarms, %s per hour [95%% CI %.1f, %.1f]" % (
        seconds, rules, len(alarms), "%.1f" % rate[0], rate[1], rate[2]) if rate else "clean load: not run"]
    for fa in alarms:
        out.append("  false alarm: %s pid %s (%s) %s" % (fa.get("class"), fa.get("pid"), fa.get("comm"),
                                                         json.dumps(fa.get("evidence", {}))[:200]))
    return out


def check_floors(agg, floors):
    """Lines naming each probability below its floor (empty: all hold).
    floors: {"pooled": {...}, "per_row": {row: {metric: floor}}}, metrics
    detect, locate, handle, recover."""
    keys = {"detect": ("d", "n"), "locate": ("l", "n"), "handle": ("h", "h_n"), "recover": ("s", "h_n")}
    failed = []

    def check(name, a, want):
        for metric, floor in want.items():
            k, n = keys[metric]
            if a[n] == 0:
                continue
            p = a[k] / float(a[n])
            if p + 1e-9 < floor:
                failed.append("%s %s = %d/%d = %.2f below its floor %.2f" % (name, metric, a[k], a[n], p, floor))
    for row, want in floors.get("per_row", {}).items():
        if row in agg:
            check(row, agg[row], want)
    pooled = floors.get("pooled", {})
    if pooled:
        rows = [r for r in agg if r in floors.get("per_row", {})]
        check("pooled", totals(agg, rows), pooled)
    return failed


def write_results(outdir, runs, lines, misses):
    os.makedirs(os.path.join(outdir, "runs"), exist_ok=True)
    for r in runs:
        doc = {"row": r.row, "class": r.cls, "n": r.n, "lane": r.lane, "pids": sorted(r.pids),
               "victims": sorted(r.victims), "cgroup": r.cgroup, "injected_ns": r.injected_ns,
               "detected": r.detected, "located": r.located, "latency_ms": r.latency_ms,
               "handled": r.handled, "recovered": r.recovered, "misses": r.misses, "note": r.note,
               "fault": r.fault, "records": r.records}
        with open(os.path.join(outdir, "runs", "%s_%d.json" % (r.row.replace(":", "_"), r.n)), "w") as f:
            json.dump(doc, f, indent=1, default=str)
    with open(os.path.join(outdir, "table.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(outdir, "misses.txt"), "w") as f:
        f.write("\n".join(misses) + ("\n" if misses else ""))
