#!/usr/bin/env python3
"""bench_routing_summary.py TSV — markdown tables (medians, ratios) for
loadtest/bench_routing.sh. TSV columns: part cond config run ttfb total code
bytes sha_ok load1 server_timing."""
import statistics as st, sys
from collections import defaultdict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 0
g = defaultdict(list)
for r in rows:
    g[(r[0], r[1], r[2])].append(r)


def med(rs, i):
    v = [float(r[i]) for r in rs if r[6] == "200" and r[8] == "ok"]
    return st.median(v) if v else float("nan")


def runs(rs, i):
    return " ".join(f"{float(r[i]):.2f}" if r[6] == "200" and r[8] == "ok" else f"FAIL({r[6]},{r[8]})" for r in rs)


def okc(rs):
    return f"{sum(1 for r in rs if r[6] == '200' and r[8] == 'ok')}/{len(rs)}"


out = []
t = {k: v for k, v in g.items() if k[0] == "ttfb"}
if t:
    out.append(f"### 1. Cold {size//1048576} MiB file: found through routing vs through a hint\n")
    out.append("| how the provider is found | ok (sha256) | median TTFB s | median total s | TTFB runs s | total runs s |")
    out.append("|---|---|---|---|---|---|")
    for k in sorted(t):
        rs = t[k]
        out.append(f"| {k[2]} | {okc(rs)} | {med(rs,4):.3f} | {med(rs,5):.3f} | {runs(rs,4)} | {runs(rs,5)} |")
    r_, h_ = t.get(("ttfb", "-", "routing")), t.get(("ttfb", "-", "hint"))
    if r_ and h_:
        out.append(f"\nrouting / hint: TTFB {med(r_,4)/med(h_,4):.2f}x "
                   f"(+{(med(r_,4)-med(h_,4))*1000:.0f} ms), total {med(r_,5)/med(h_,5):.2f}x\n")
for cond in ("unlimited", "100mbit"):
    t = {k: v for k, v in g.items() if k[0] == "tput" and k[1] == cond}
    if not t:
        continue
    title = "loopback, no rate limit" if cond == "unlimited" else "each provider behind a 100 Mbit/s pacing proxy"
    out.append(f"### 2. Throughput, {size//1048576} MiB cold — {title}\n")
    out.append("| providers | ok (sha256) | median total s | median MiB/s | total runs s |")
    out.append("|---|---|---|---|---|")
    meds = {}
    for k in ("bitswap", "http", "both"):
        if ("tput", cond, k) not in t:
            continue
        rs = t[("tput", cond, k)]
        m = med(rs, 5)
        meds[k] = m
        mibs = size / 1048576 / m if size and m == m else float("nan")
        out.append(f"| {k} | {okc(rs)} | {m:.3f} | {mibs:.1f} | {runs(rs,5)} |")
    if all(k in meds for k in ("bitswap", "http", "both")):
        best = min(meds["bitswap"], meds["http"])
        which = "bitswap" if meds["bitswap"] <= meds["http"] else "http"
        sp = best / meds["both"]
        verdict = "MET" if sp >= 1.5 else f"MISSED (needs 1.5x, {sp/1.5*100:.0f}% of target)"
        out.append(f"\nboth vs faster alone ({which}): speed-up {sp:.2f}x — target 1.5x {verdict}\n")
print("\n".join(out))
