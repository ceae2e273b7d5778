#!/usr/bin/env python3
"""k6_report.py — Markdown summary and PNG plots of k6 runs (run_k6.sh, soak.sh).

  k6_report.py PREFIX PHASE [PHASE ...] [--samples TSV] [--events TSV]

Reads PREFIX-PHASE.json.gz (k6 --out json) for each phase and prints, per
phase: requests, rate, status codes, wrong bodies / bad headers / unexpected
statuses (the k6 script's counters, by kind and status), and latency
percentiles (p50/p95/p99 of http_req_duration, nearest rank) overall and by
request kind. Writes PREFIX-PHASE-latency.png (latency over time by kind, and
the latency distribution by kind). With --samples (TSV: t rss_kib fds
sessions_live, t in seconds since the load started) it also plots the
gateway's RSS, open fds and live sessions to PREFIX-gateway.png, marking the
--events (TSV: t label) such as provider restarts.
Percentiles are also written to PREFIX-PHASE.stats.json for other scripts.
"""
import collections
import gzip
import json
import sys
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WANTED = ("http_req_duration", "wrong_bodies", "bad_headers", "unexpected_status", "checks", "data_received")


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def ts(s):
    # "2026-11-25T04:50:01.123456789Z" or with +00:00; keep microseconds
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac, tz = rest[:rest.index("+")] if "+" in rest else rest, rest[rest.index("+"):] if "+" in rest else ""
        s = f"{head}.{frac[:6]}{tz}"
    return datetime.fromisoformat(s).timestamp()


def load(path):
    reqs = []  # (t, ms, kind, status, scenario)
    counters = collections.Counter()
    checks_fail = collections.Counter()
    checks_total = 0
    data_rx = 0
    with gzip.open(path, "rt") as f:
        for line in f:
            if '"Point"' not in line or not any(f'"metric":"{m}"' in line for m in WANTED):
                continue
            d = json.loads(line)
            m, data = d["metric"], d["data"]
            tags = data.get("tags") or {}
            if m == "http_req_duration":
                reqs.append((ts(data["time"]), data["value"], tags.get("kind", "?"),
                             tags.get("status", "?"), tags.get("scenario", "?")))
            elif m == "checks":
                checks_total += 1
                if data["value"] == 0:
                    checks_fail[tags.get("check", "?")] += 1
            elif m == "data_received":
                data_rx += data["value"]
            else:
                key = (m, tags.get("kind", "?"), tags.get("status", ""))
                counters[key] += data["value"]
    return reqs, counters, checks_fail, checks_total, data_rx


def report(prefix, phase):
    reqs, counters, checks_fail, checks_total, data_rx = load(f"{prefix}-{phase}.json.gz")
    out = [f"### {phase}", ""]
    if not reqs:
        out.append("no requests recorded")
        return "\n".join(out), {}
    t0 = min(r[0] for r in reqs)
    span = max(r[0] for r in reqs) - t0 or 1
    statuses = collections.Counter(r[3] for r in reqs)
    wrong = sum(v for (m, _, _), v in counters.items() if m == "wrong_bodies")
    badh = sum(v for (m, _, _), v in counters.items() if m == "bad_headers")
    unexp = sum(v for (m, _, _), v in counters.items() if m == "unexpected_status")
    allms = sorted(r[1] for r in reqs)
    stats = {"requests": len(reqs), "seconds": span, "rps": len(reqs) / span, "statuses": dict(statuses),
             "wrong_bodies": wrong, "bad_headers": badh, "unexpected_status": unexp,
             "p50": pct(allms, 50), "p95": pct(allms, 95), "p99": pct(allms, 99), "max": allms[-1],
             "mib_received": data_rx / 1048576, "checks": checks_total, "checks_failed": sum(checks_fail.values())}
    out.append(f"- requests: **{len(reqs)}** in {span:.0f} s ({stats['rps']:.1f}/s), "
               f"{stats['mib_received']:.0f} MiB received")
    out.append("- status codes: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    out.append(f"- wrong bodies: **{int(wrong)}**; bad headers: {int(badh)}; unexpected status: {int(unexp)}; "
               f"checks failed: {stats['checks_failed']} of {checks_total}")
    details = [f"{m} {k} {s}".strip() + f": {int(v)}" for (m, k, s), v in sorted(counters.items()) if v]
    if details:
        out.append("  - by kind: " + "; ".join(details))
    if checks_fail:
        out.append("  - failed checks: " + "; ".join(f"{c}: {n}" for c, n in checks_fail.most_common()))
    out += ["", "| kind | requests | non-2xx/301 | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    by_kind = collections.defaultdict(list)
    for r in reqs:
        by_kind[r[2]].append(r)
    rows = sorted(by_kind.items()) + [("**all**", reqs)]
    stats["kinds"] = {}
    for kind, rs in rows:
        ms = sorted(r[1] for r in rs)
        bad = sum(1 for r in rs if r[3] not in ("200", "206", "301"))
        out.append(f"| {kind} | {len(rs)} | {bad} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {pct(ms, 99):.1f} | {ms[-1]:.1f} |")
        stats["kinds"][kind] = {"n": len(rs), "p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99)}
    png = f"{prefix}-{phase}-latency.png"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    for kind, rs in sorted(by_kind.items()):
        a1.scatter([r[0] - t0 for r in rs], [r[1] for r in rs], s=3, label=kind, alpha=0.5)
        ms = sorted(r[1] for r in rs)
        a2.plot(ms, [(i + 1) / len(ms) for i in range(len(ms))], label=f"{kind} ({len(ms)})")
    a1.set_yscale("log"); a1.set_xlabel("seconds since start"); a1.set_ylabel("http_req_duration (ms)")
    a1.set_title(f"{phase}: latency over time"); a1.legend(fontsize=7, markerscale=3)
    a2.set_xscale("log"); a2.set_xlabel("http_req_duration (ms)"); a2.set_ylabel("fraction of requests")
    a2.set_title(f"{phase}: latency distribution"); a2.grid(alpha=0.3); a2.legend(fontsize=7)
    fig.tight_layout(); fig.savefig(png, dpi=90); plt.close(fig)
    out += ["", f"plot: `{png.rsplit('/', 1)[-1]}`", ""]
    with open(f"{prefix}-{phase}.stats.json", "w") as f:
        json.dump(stats, f, indent=1)
    return "\n".join(out), stats


def plot_samples(prefix, samples, events):
    rows = [l.split("\t") for l in open(samples).read().split("\n") if l.strip()]
    t = [float(r[0]) for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    for ax, col, label in zip(axes, (1, 2, 3), ("RSS (MiB)", "open fds", "sluice_sessions_live")):
        vals = [(float(r[col]) / 1024 if col == 1 else float(r[col] or "nan")) for r in rows]
        ax.plot(t, vals)
        ax.set_ylabel(label); ax.grid(alpha=0.3)
        if events:
            for l in open(events):
                if l.strip():
                    et = float(l.split("\t")[0])
                    ax.axvline(et, color="grey", alpha=0.3, lw=0.8)
    axes[-1].set_xlabel("seconds since the load started (grey: provider restarts)")
    fig.tight_layout(); fig.savefig(f"{prefix}-gateway.png", dpi=90); plt.close(fig)
    return f"plot: `{prefix.rsplit('/', 1)[-1]}-gateway.png`"


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    samples = events = None
    if "--samples" in args:
        i = args.index("--samples"); samples = args[i + 1]; del args[i:i + 2]
    if "--events" in args:
        i = args.index("--events"); events = args[i + 1]; del args[i:i + 2]
    prefix, phases = args[0], args[1:]
    results = [(ph, *report(prefix, ph)) for ph in phases]
    print("| phase | requests | req/s | status codes | wrong bodies | bad headers | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for ph, _, st in results:
        if st:
            codes = ", ".join(f"{c}: {n}" for c, n in sorted(st["statuses"].items()))
            print(f"| {ph} | {st['requests']} | {st['rps']:.1f} | {codes} | {int(st['wrong_bodies'])} | "
                  f"{int(st['bad_headers'])} | {st['p50']:.1f} | {st['p95']:.1f} | {st['p99']:.1f} |")
    print()
    for _, text, _ in results:
        print(text)
    if samples:
        print(plot_samples(prefix, samples, events))
