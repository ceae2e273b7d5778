#!/usr/bin/env python3
"""Summary of a hostile soak (loadtest/soak_hostile.sh): targets, figures, plot.

  soak_report.py --facts FACTS.json --samples SAMPLES.tsv [--events EVENTS.tsv] --png OUT.png

FACTS.json is written by the script: the k6 stats file (from k6_report.py),
the attackers' final counters, the config check, the RSS bound and how it
was derived, the descriptor and session figures after the load. SAMPLES.tsv
has one line per sample: t, phase (load|after), RSS KiB, open fds, TCP
connections held by the gateway, sluice_sessions_live, then open / closed
by the server for each attacker (stalled, slowloris, flood). Prints Markdown.
"""

import argparse
import json

COLS = ["t", "phase", "rss_kib", "fds", "tcp", "sessions",
        "stalled_open", "stalled_closed", "slow_open", "slow_closed", "flood_open", "flood_closed"]
ATTACKERS = [("stalled", "stalled readers"), ("slow", "slowloris"), ("flood", "partial-frame flooder")]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def load_samples(path):
    rows = []
    for line in open(path):
        if line.strip():
            rows.append(dict(zip(COLS, line.rstrip("\n").split("\t"))))
    return rows


def mark(ok):
    return "PASS" if ok else "**MISS**"


def secs(d):
    if not d:
        return "–"
    return f"{d['median']} / {d['max']} s (n={d['n']})"


def plot(rows, events, bound_mib, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [num(r["t"]) for r in rows]
    fig, axes = plt.subplots(5, 1, figsize=(11, 12), sharex=True)
    ax = axes[0]
    ax.plot(t, [num(r["rss_kib"]) / 1024 for r in rows], label="RSS")
    ax.axhline(bound_mib, color="red", ls="--", lw=1, label=f"RSS_BOUND_MIB {bound_mib:.0f}")
    ax.set_ylabel("MiB"); ax.legend(loc="upper left")
    ax = axes[1]
    ax.plot(t, [num(r["fds"]) for r in rows], label="open fds")
    ax.plot(t, [num(r["tcp"]) for r in rows], label="TCP connections held (gateway port)")
    ax.legend(loc="upper left")
    axes[2].plot(t, [num(r["sessions"]) for r in rows])
    axes[2].set_ylabel("sessions_live")
    ax = axes[3]
    for k, label in ATTACKERS:
        ax.plot(t, [num(r[f"{k}_open"]) for r in rows], label=label)
    ax.set_ylabel("attacker conns open"); ax.legend(loc="upper left")
    ax = axes[4]
    for k, label in ATTACKERS:
        ax.plot(t, [num(r[f"{k}_closed"]) for r in rows], label=label)
    ax.set_ylabel("closed by server\n(cumulative)"); ax.legend(loc="upper left")
    after = next((num(r["t"]) for r in rows if r["phase"] == "after"), None)
    for ax in axes:
        ax.grid(alpha=0.3)
        if after is not None:
            ax.axvline(after, color="black", lw=1)
        for et in events:
            ax.axvline(et, color="grey", alpha=0.3, lw=0.8)
    axes[-1].set_xlabel("seconds since the load started (black: load and attackers stopped; grey: provider B restarts)")
    fig.tight_layout(); fig.savefig(png, dpi=90); plt.close(fig)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--facts", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--events")
    p.add_argument("--png", required=True)
    a = p.parse_args()
    f = json.load(open(a.facts))
    rows = load_samples(a.samples)
    events = []
    if a.events:
        events = [num(l.split("\t")[0]) for l in open(a.events) if l.strip()]
    st = json.load(open(f["k6_stats"]))
    att = f["attackers"]
    bound = f["rss_bound_mib"]
    during = [r for r in rows if r["phase"] == "load"] or rows
    after = [r for r in rows if r["phase"] == "after"]
    warm = next((r for r in during if num(r["t"]) >= f["warmup_secs"]), during[0])
    rss_max_sample = max(num(r["rss_kib"]) for r in during) / 1024
    hwm = f["vmhwm_kib"] / 1024
    rss_peak = max(rss_max_sample, hwm)

    codes = st["statuses"]
    n5xx = sum(n for c, n in codes.items() if c.startswith("5"))
    n0 = codes.get("0", 0)
    wrong = int(st["wrong_bodies"])
    fd_start, fd_end = f["fd_start"], f["fd_end"]
    fd_ok = fd_end is not None and fd_end <= fd_start + f["fd_slack"]
    sess_ok = "0 after" in f["sessions"]

    print("## Targets")
    print()
    print(f"- zero wrong bodies: {mark(wrong == 0)} ({wrong}; bad headers {int(st['bad_headers'])}, "
          f"checks failed {st['checks_failed']} of {st['checks']})")
    print(f"- zero 5xx for honest clients: {mark(n5xx == 0)} ({n5xx}: "
          f"{', '.join(f'{c}: {n}' for c, n in sorted(codes.items()) if c.startswith('5')) or 'none'})")
    print(f"- no honest request without an answer (k6 status 0: refused, reset, timed out): {mark(n0 == 0)} ({n0})")
    print(f"- max RSS ≤ RSS_BOUND_MIB {bound:.0f}: {mark(rss_peak <= bound)} "
          f"(peak {rss_peak:.0f} MiB: VmHWM {hwm:.0f}, highest sample {rss_max_sample:.0f})")
    print(f"- open fds back within {f['fd_slack']} of their start after the attackers stopped: {mark(fd_ok)} "
          f"(start {fd_start}, {f['fd_settle']})")
    print(f"- sluice_sessions_live back to 0: {mark(sess_ok)} ({f['sessions']})")
    print()

    print("## Figures")
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| honest requests | {st['requests']} in {st['seconds']:.0f} s ({st['rps']:.1f}/s), {st['mib_received']:.0f} MiB |")
    print(f"| status codes | {', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))} |")
    print(f"| latency p50 / p95 / p99 / max | {st['p50']:.1f} / {st['p95']:.1f} / {st['p99']:.1f} / {st['max']:.0f} ms |")
    print(f"| RSS at {f['warmup_secs']} s (t={warm['t']}) / last load sample (t={during[-1]['t']}) / highest sample / VmHWM | "
          f"{num(warm['rss_kib'])/1024:.0f} / {num(during[-1]['rss_kib'])/1024:.0f} / {rss_max_sample:.0f} / {hwm:.0f} MiB |")
    if after:
        print(f"| RSS after the load (t={after[-1]['t']}) | {num(after[-1]['rss_kib'])/1024:.0f} MiB |")
    print(f"| open fds: before the load / highest during / last load sample / last after | {fd_start} / "
          f"{max(int(num(r['fds'])) for r in during)} / {during[-1]['fds']} / {(after or during)[-1]['fds']} |")
    print(f"| TCP connections held by the gateway: highest during / last load sample / last after | "
          f"{max(int(num(r['tcp'])) for r in during)} / {during[-1]['tcp']} / {(after or during)[-1]['tcp']} |")
    live = [int(num(r["sessions"])) for r in during if r["sessions"].strip().isdigit()]
    print(f"| sluice_sessions_live: highest during / after | {max(live) if live else '?'} / {f['sessions']} |")
    print(f"| provider B restarts | {f['restarts']} |")
    if f.get("metrics"):
        print(f"| defence / corrupt-block metrics | {'; '.join(f'{k} {v}' for k, v in f['metrics'].items())} |")
    print()

    print("## Attackers")
    print()
    print("| attacker | at once | opened | closed by the server | connect errors | open → server closed, median / max | still open at the end (n, oldest) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for key, label in (("stalled", "stalled readers"), ("slowloris", "slowloris")):
        s = att.get(key) or {}
        still = s.get("still_open_at_snapshot_secs")
        still_txt = f"{still['n']}, {still['max']} s" if still else "0"
        print(f"| {label} | {s.get('slots', '?')} | {s.get('opened', '?')} | {s.get('closed_by_server', '?')} | "
              f"{s.get('connect_errors', '?')} | {secs(s.get('secs_until_server_closed'))} | {still_txt} |")
    fl = att.get("flood") or {}
    print(f"| partial-frame streams ({fl.get('peers', '?')} peers) | {fl.get('slots', '?')} | {fl.get('streams_opened', '?')} | "
          f"{fl.get('streams_closed_by_server', '?')} | {fl.get('stream_open_errors', '?')} | "
          f"{secs(fl.get('secs_until_server_closed'))} | {fl.get('streams_open_at_stop', '?')} |")
    print()
    sl = att.get("slowloris") or {}
    if sl.get("answers"):
        print(f"Slowloris connections ended by: {', '.join(f'{k}: {v}' for k, v in sorted(sl['answers'].items()))}.")
    if fl:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted((fl.get("close_reasons") or {}).items()))
        print(f"Flooder: {fl.get('mib_sent', '?')} MiB sent, {fl.get('connections_closed', '?')} libp2p connections closed; "
              f"streams ended by: {reasons or 'none ended'}.")
    print()

    print("## Config and RSS bound")
    print()
    print(f"- config: `{f['config']}`; budgets in force: "
          + ", ".join(f"`{k}` = {'not in force' if v is None else f'{v} ({v/1048576:.0f} MiB)'}" for k, v in f["budgets"].items()))
    if f["dropped"]:
        print(f"- **unknown to this binary, commented out (not in force)**: {'; '.join(f'`{d}`' for d in f['dropped'])}")
    print(f"- RSS_BOUND_MIB = {bound:.0f}: {f['rss_bound_how']}")
    print()
    plot(rows, events, bound, a.png)
    print(f"plot: `{a.png.rsplit('/', 1)[-1]}` (RSS and bound, fds and TCP connections, live sessions, attacker connections open and closed)")
    print()


if __name__ == "__main__":
    main()
