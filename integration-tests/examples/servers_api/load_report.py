#!/usr/bin/env python3
"""Summary and chart for load.sh (standard library only).

  load_report.py --one RESULTS/runs/<scenario>-<round>     one line about one run
  load_report.py --results RESULTS --chart FILE.svg        summary.{csv,json}, table, chart

The chart is drawn in the style of benches/src/plot.rs (same size, colours, fonts, grid).
"""

import argparse
import csv
import glob
import json
import math
import os
import re
import statistics
import sys

SCENARIOS = [
    ("on", "1 cache on"),
    ("off", "2 cache off"),
    ("kill", "3 Redis killed"),
]
SPACE = "server:get_server_details"
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def counters(path):
    """cache_*_total counters of get_server_details' space, summed over their other labels."""
    out = {}
    try:
        text = open(path).read()
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r'^(cache_\w+_total)\{([^}]*)\}\s+(\S+)$', line)
        if m and f'space="{SPACE}"' in m.group(2):
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(3))
    return out


def dense(timeline):
    """The timeline with the 100 ms buckets in which nothing was answered put back (as 0, 0)."""
    have = {t: (ok, bad) for t, ok, bad in timeline}
    if not have:
        return []
    return [[t, *have.get(t, (0, 0))] for t in range(min(have), max(have) + 100, 100)]


def load_run(prefix):
    meta = json.load(open(prefix + ".meta.json"))
    wrk = json.load(open(prefix + ".wrk.json"))
    run = dict(meta)
    for k in ("requests", "rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
              "connect_errors", "read_errors", "write_errors", "timeouts"):
        run[k] = wrk[k]
    timeline = dense(wrk["timeline"])  # [ms, ok, bad] per 100 ms
    run["non2xx"] = sum(b for _, _, b in timeline)
    run["errors"] = (run["non2xx"] + wrk["connect_errors"] + wrk["read_errors"]
                     + wrk["write_errors"] + wrk["timeouts"])
    before, after = counters(prefix + ".metrics-before.txt"), counters(prefix + ".metrics-after.txt")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    hits, misses = delta.get("cache_hits_total", 0), delta.get("cache_misses_total", 0)
    run["hit_ratio"] = hits / (hits + misses) if hits + misses else None
    run["cache_counters"] = {k: int(v) for k, v in sorted(delta.items()) if v}
    run.update(cpu_use(meta))
    run.update(kill_analysis(run, timeline))
    run["timeline"] = timeline
    return run


def cpu_use(meta):
    """Busy and steal shares of all cores over the measured run (from /proc/stat)."""
    try:
        a = [int(x) for x in meta["cpu_before"].split()[1:]]
        b = [int(x) for x in meta["cpu_after"].split()[1:]]
    except (KeyError, ValueError):
        return {}
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
    return {"cpu_busy": round(1 - (d[3] + d[4]) / total, 3), "cpu_steal": round(d[7] / total, 3)}


def kill_analysis(run, timeline):
    """Rates before and after the kill, the worst 100 ms after it, and when the rate settled."""
    if not run.get("kill_ms"):
        return {}
    kill = run["kill_ms"]
    # Drop the first and the last bucket of the run (partial).
    ticks = [(t, ok, bad) for t, ok, bad in timeline[1:-1]]
    pre = [ok * 10 for t, ok, _ in ticks if kill - 5000 <= t < kill - 100]
    post = [(t, ok * 10, bad) for t, ok, bad in ticks if t > kill - 100]  # from the kill's bucket
    tail = [r for t, r, _ in post if t >= kill + 5000]
    pre_rate = statistics.median(pre) if pre else None
    tail_rate = statistics.median(tail) if tail else None
    worst = min(post, key=lambda x: x[1]) if post else None
    # Settled: from the first 1 s window after the kill whose mean rate stays within 20% of the
    # last seconds' median for every following 1 s window.
    settled_ms = None
    if tail_rate:
        rates = [r for _, r, _ in post]
        for i in range(len(rates)):
            if all(abs(statistics.mean(rates[j:j + 10]) - tail_rate) <= 0.2 * tail_rate
                   for j in range(i, max(i + 1, len(rates) - 9))):
                settled_ms = max(0, post[i][0] + 100 - kill)  # the end of that bucket
                break
    zero = [t for t, r, _ in post if r == 0]
    return {
        "rps_before_kill": pre_rate,
        "rps_after_kill": tail_rate,
        "worst_100ms_rps_after_kill": worst[1] if worst else None,
        "worst_100ms_at_ms": (worst[0] - kill) if worst else None,
        "empty_100ms_buckets_after_kill": len(zero),
        "settled_after_ms": settled_ms,
        "non2xx_after_kill": sum(b for _, _, b in post),
    }


def one_line(run):
    s = (f"{run['scenario']:>4} round {run['round']}: {run['rps']:,.0f} req/s, "
         f"p50 {run['p50_us'] / 1000:.2f} ms, p99 {run['p99_us'] / 1000:.2f} ms, "
         f"max {run['max_us'] / 1000:.1f} ms, errors {run['errors']}")
    if run["hit_ratio"] is not None:
        s += f", hit ratio {run['hit_ratio']:.3f}"
    if "cpu_busy" in run:
        s += f", CPU busy {run['cpu_busy']:.0%} (steal {run['cpu_steal']:.0%})"
    if run.get("kill_ms"):
        s += (f"; kill: {fmt(run['rps_before_kill'])} -> {fmt(run['rps_after_kill'])} req/s, "
              f"worst 100 ms {fmt(run['worst_100ms_rps_after_kill'])} req/s at "
              f"+{run['worst_100ms_at_ms']} ms, settled after {run['settled_after_ms']} ms, "
              f"health after: {run['health_after']}")
    return s


def fmt(v):
    return "-" if v is None else f"{v:,.0f}"


def spread(values, scale=1.0, digits=0):
    values = [v / scale for v in values if v is not None]
    if not values:
        return "-", "-"
    med = statistics.median(values)
    f = f"{{:,.{digits}f}}"
    return f.format(med), f"{f.format(min(values))}-{f.format(max(values))}"


def summary(results, chart):
    runs = [load_run(p[:-len(".meta.json")])
            for p in sorted(glob.glob(os.path.join(results, "runs", "*.meta.json")))]
    if not runs:
        sys.exit("load_report.py: no runs under " + results)
    setup = json.load(open(os.path.join(results, "setup.json")))

    fields = ["scenario", "round", "duration_s", "requests", "rps", "p50_us", "p90_us", "p99_us",
              "p999_us", "max_us", "mean_us", "errors", "non2xx", "connect_errors",
              "read_errors", "write_errors", "timeouts", "hit_ratio", "rps_before_kill",
              "rps_after_kill", "worst_100ms_rps_after_kill", "worst_100ms_at_ms",
              "empty_100ms_buckets_after_kill", "settled_after_ms", "non2xx_after_kill",
              "health_after", "cpu_busy", "cpu_steal"]
    with open(os.path.join(results, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in sorted(runs, key=lambda r: (r["scenario"], r["round"])):
            w.writerow(r)

    medians = {}
    lines = [
        "| scenario | req/s | p50 ms | p99 ms | max ms | errors | hit ratio | rounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in SCENARIOS:
        rs = [r for r in runs if r["scenario"] == key]
        if not rs:
            continue
        med = {}
        for field in ("rps", "p50_us", "p99_us", "max_us", "errors", "hit_ratio",
                      "rps_before_kill", "rps_after_kill", "settled_after_ms",
                      "worst_100ms_rps_after_kill", "non2xx_after_kill"):
            vals = [r.get(field) for r in rs if r.get(field) is not None]
            if vals:
                med[field] = statistics.median(vals)
                med[field + "_min"], med[field + "_max"] = min(vals), max(vals)
        medians[key] = med
        rps = spread([r["rps"] for r in rs])
        p50 = spread([r["p50_us"] for r in rs], 1000, 2)
        p99 = spread([r["p99_us"] for r in rs], 1000, 2)
        mx = spread([r["max_us"] for r in rs], 1000, 1)
        hr = spread([r["hit_ratio"] for r in rs], 1, 3)
        errs = sum(r["errors"] for r in rs)
        lines.append(f"| {label} | {rps[0]} ({rps[1]}) | {p50[0]} ({p50[1]}) | "
                     f"{p99[0]} ({p99[1]}) | {mx[0]} ({mx[1]}) | {errs} | {hr[0]} | {len(rs)} |")
    table = "\n".join(lines)

    json.dump({"setup": setup, "medians": medians,
               "runs": [{k: v for k, v in r.items()} for r in runs]},
              open(os.path.join(results, "summary.json"), "w"), indent=1)

    print()
    print(f"Medians of {setup['rounds']} rounds (min-max in brackets); errors: total over "
          f"all rounds (non-2xx + socket errors + timeouts)")
    print(table)
    for r in sorted(runs, key=lambda r: (r["scenario"], r["round"])):
        print(one_line(r))

    os.makedirs(os.path.dirname(os.path.abspath(chart)), exist_ok=True)
    with open(chart, "w") as f:
        f.write(draw(runs, setup))
    print(f"\nwrote {os.path.join(results, 'summary.csv')}, summary.json and {chart}")


# --- the chart ----------------------------------------------------------------------------------

def short(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k" if v >= 1e4 else f"{v / 1e3:.1f}k"
    if v >= 10:
        return f"{v:.0f}"
    return f"{v:.2f}"


def nice_max(v):
    """The data maximum plus 15%, rounded up to 1, 2 or 5 times a power of ten (5 even ticks)."""
    v = max(v * 1.15, 1e-9)
    step = v / 5
    mag = 10 ** math.floor(math.log10(step))
    for m in (1, 2, 2.5, 5, 10):
        if step <= m * mag:
            return 5 * m * mag
    return v


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bars(svg, x_off, y_off, w, h, title, y_label, groups, values, spreads):
    """plot.rs' grouped_bars with one series (the median) and a min-max whisker."""
    left, right, top, bottom = 70.0, 10.0, 40.0, 40.0
    pw, ph = w - left - right, h - top - bottom
    top_data = max([hi for _, hi in spreads] + values + [1e-9])
    # A whisker far above the bars (a stall) is clipped, so that the bars stay readable.
    mx = nice_max(min(top_data, 3 * max(values + [1e-9])))
    svg.append(f'<text x="{x_off + w / 2:.1f}" y="{y_off + 24}" text-anchor="middle" '
               f'font-size="14">{esc(title)}</text>')
    for i in range(6):
        v = mx * i / 5
        y = y_off + top + ph - ph * i / 5
        svg.append(f'<line x1="{x_off + left}" x2="{x_off + left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#ddd"/><text x="{x_off + left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{short(v)}</text>')
    cy = y_off + top + ph / 2
    svg.append(f'<text x="{x_off + 16}" y="{cy:.1f}" transform="rotate(-90 {x_off + 16} {cy:.1f})" '
               f'text-anchor="middle">{esc(y_label)}</text>')
    gw = pw / len(groups)
    for g, (label, v, (lo, hi)) in enumerate(zip(groups, values, spreads)):
        bw = gw * 0.5
        x = x_off + left + gw * g + gw * 0.25
        bh = ph * v / mx
        y = y_off + top + ph - bh
        svg.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                   f'fill="{COLORS[g % len(COLORS)]}"/>')
        cx = x + bw / 2
        ylo, yhi = y_off + top + ph - ph * lo / mx, y_off + top + ph - ph * min(hi, mx) / mx
        if hi > mx:
            svg.append(f'<text x="{cx - 6:.1f}" y="{yhi + 10:.1f}" text-anchor="end" '
                       f'font-size="10">one round: {hi:,.0f} (clipped)</text>')
        svg.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{ylo:.1f}" y2="{yhi:.1f}" stroke="black"/>'
                   f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{ylo:.1f}" y2="{ylo:.1f}" stroke="black"/>'
                   f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{yhi:.1f}" y2="{yhi:.1f}" stroke="black"/>')
        svg.append(f'<text x="{x + 3:.1f}" y="{y - 4:.1f}" text-anchor="start" '
                   f'font-size="10">{short(v)}</text>')
        svg.append(f'<text x="{cx:.1f}" y="{y_off + top + ph + 16:.1f}" '
                   f'text-anchor="middle">{esc(label)}</text>')


def timeline_panel(svg, x_off, y_off, w, h, runs):
    """Answers per second (100 ms buckets) around the kill, one line per round."""
    left, right, top, bottom = 70.0, 10.0, 40.0, 50.0
    pw, ph = w - left - right, h - top - bottom
    series = []
    for r in sorted(runs, key=lambda r: r["round"]):
        pts = [((t - r["kill_ms"]) / 1000, ok * 10, bad * 10) for t, ok, bad in r["timeline"][1:-1]]
        series.append((r["round"], pts))
    if not series:
        return
    xmin = min(p[0] for _, pts in series for p in pts)
    xmax = max(p[0] for _, pts in series for p in pts)
    ymax = nice_max(max(p[1] for _, pts in series for p in pts))
    sx = lambda v: x_off + left + pw * (v - xmin) / (xmax - xmin or 1)
    sy = lambda v: y_off + top + ph - ph * v / ymax
    svg.append(f'<text x="{x_off + w / 2:.1f}" y="{y_off + 24}" text-anchor="middle" font-size="14">'
               f'3: answers per second (100 ms buckets) around the SIGKILL of redis-server</text>')
    for i in range(6):
        v = ymax * i / 5
        svg.append(f'<line x1="{x_off + left}" x2="{x_off + left + pw}" y1="{sy(v):.1f}" '
                   f'y2="{sy(v):.1f}" stroke="#ddd"/><text x="{x_off + left - 6}" '
                   f'y="{sy(v) + 4:.1f}" text-anchor="end">{short(v)}</text>')
    t = 2 * math.ceil(xmin / 2)
    while t <= xmax:
        svg.append(f'<text x="{sx(t):.1f}" y="{y_off + top + ph + 16:.1f}" '
                   f'text-anchor="middle">{t:+d} s</text>')
        t += 2
    cy = y_off + top + ph / 2
    svg.append(f'<text x="{x_off + 16}" y="{cy:.1f}" transform="rotate(-90 {x_off + 16} {cy:.1f})" '
               f'text-anchor="middle">req/s (2xx)</text>')
    svg.append(f'<line x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{y_off + top}" y2="{y_off + top + ph}" '
               f'stroke="black" stroke-dasharray="4 3"/><text x="{sx(0) + 4:.1f}" '
               f'y="{y_off + top + 12}" font-size="10">redis-server SIGKILLed</text>')
    for i, (rnd, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in pts)
        svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{d}"/>')
        lx = x_off + left + i * 120
        ly = y_off + h - 12
        svg.append(f'<rect x="{lx:.1f}" y="{ly - 10:.1f}" width="12" height="12" fill="{color}"/>'
                   f'<text x="{lx + 16:.1f}" y="{ly:.1f}">round {rnd}</text>')
        bad = [(x, b) for x, _, b in pts if b]
        for x, b in bad:
            svg.append(f'<circle cx="{sx(x):.1f}" cy="{sy(b):.1f}" r="2" fill="#d62728"/>')


def draw(runs, setup):
    width, height = 820.0, 760.0
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16">servers_api under '
           f'wrk: GET /servers/{{id}}, {setup["connections"]} connections, {setup["cores"]} shared '
           f'cores</text>',
           f'<text x="{width / 2}" y="42" text-anchor="middle" font-size="11">medians of '
           f'{setup["rounds"]} interleaved rounds, whiskers: min-max; '
           f'{int(setup["hot_share"] * 100)}% of requests on {setup["hot_ids"]:,} of '
           f'{setup["servers"]:,} ids</text>']
    groups, rps, rps_sp, p99, p99_sp = [], [], [], [], []
    for key, label in SCENARIOS:
        rs = [r for r in runs if r["scenario"] == key]
        if not rs:
            continue
        groups.append(label)
        v = [r["rps"] for r in rs]
        rps.append(statistics.median(v))
        rps_sp.append((min(v), max(v)))
        v = [r["p99_us"] / 1000 for r in rs]
        p99.append(statistics.median(v))
        p99_sp.append((min(v), max(v)))
    bars(svg, 0, 50, width / 2, 330, "requests per second", "req/s", groups, rps, rps_sp)
    bars(svg, width / 2, 50, width / 2, 330, "p99 latency (wrk's, corrected for omission)", "ms", groups, p99, p99_sp)
    timeline_panel(svg, 0, 400, width, 350, [r for r in runs if r["scenario"] == "kill"])
    svg.append("</svg>\n")
    return "\n".join(svg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one")
    ap.add_argument("--results")
    ap.add_argument("--chart")
    a = ap.parse_args()
    if a.one:
        print(one_line(load_run(a.one)))
    else:
        summary(a.results, a.chart or os.path.join(a.results, "servers_api_load.svg"))


if __name__ == "__main__":
    main()
