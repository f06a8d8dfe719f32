#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns bench/guest.sh's measurements into the benchmark's table, JSON and plot.

    report.py --raw RAW [--out DIR] [--command CMD] [--git REV] [--clock TEXT] [--no-plot]

Prints the table (Markdown). With --out, also writes DIR/bench-DATE.json, DIR/latest.json,
DIR/latest.md and (matplotlib permitting, unless --no-plot) DIR/latest.png.

Overhead of a tracker on a workload = time per packet with it - time per packet without
(mode "none"), per round (the rounds alternate the modes, so each round's modes saw the same
drift), median over rounds. Ratios divide icmp_ct's overhead by nf_conntrack's.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys

MODES = ["none", "nfct", "kr0", "kr1"]
TRACKERS = ["nfct", "kr0", "kr1"]
LABEL = {
    "none": "no tracking",
    "nfct": "nf_conntrack",
    "kr0": "icmp_ct keep_replied=0",
    "kr1": "icmp_ct keep_replied=1",
}
BASIC = ["echo1", "echo_ids", "udp", "errors"]
WHAT = {
    "echo1": "one ping session flooded",
    "echo_ids": "a new echo id each packet",
    "udp": "a new UDP flow each packet",
    "errors": "ICMP errors (RELATED)",
}


def parse(path):
    """Lines of "kind key=value ..." as dicts (numbers as int)."""
    records = []
    with open(path) as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            rec = {"kind": words[0]}
            for w in words[1:]:
                k, _, v = w.partition("=")
                try:
                    rec[k] = int(v)
                except ValueError:
                    rec[k] = v
            records.append(rec)
    return records


def median(values):
    return statistics.median(values) if values else None


def fmt(v, spec="{:.0f}", none="-"):
    return none if v is None else spec.format(v)


class Report:
    def __init__(self, records):
        self.records = records
        self.meta = {}
        for r in records:
            if r["kind"] == "meta":
                self.meta.update({k: v for k, v in r.items() if k != "kind"})
        self.runs = [r for r in records if r["kind"] == "run"]
        self.reads = [r for r in records if r["kind"] == "read"]
        self.idles = [r for r in records if r["kind"] == "idle"]
        self.mems = [r for r in records if r["kind"] == "mem"]
        fills = str(self.meta.get("fills", ""))
        self.fills = [int(x) for x in fills.split(",") if x]
        self.modes = [m for m in MODES if any(r["mode"] == m for r in self.runs)]

    # Time per packet (ns) of WORKLOAD in MODE, by round.
    def ns(self, workload, mode):
        return {
            r["round"]: r["usec"] * 1000 / r["packets"]
            for r in self.runs
            if r["workload"] == workload and r["mode"] == mode
        }

    def baseline_workload(self, workload):
        # Without a tracker there is no table: its empty-table flood stands for every level.
        return "fill_0" if workload.startswith("fill_") else workload

    def per_packet(self, workload):
        row = {"workload": workload, "modes": {}}
        base = self.ns(self.baseline_workload(workload), "none")
        for mode in self.modes:
            t = self.ns(workload, mode)
            if not t:
                continue
            entry = {"ns_per_packet": median(list(t.values())), "rounds": t}
            entry["pps"] = 1e9 / entry["ns_per_packet"]
            if mode != "none" and base:
                over = [t[r] - base[r] for r in t if r in base]
                entry["overhead_ns"] = median(over)
            row["modes"][mode] = entry
        nf = row["modes"].get("nfct", {}).get("overhead_ns")
        for mode in ("kr0", "kr1"):
            ov = row["modes"].get(mode, {}).get("overhead_ns")
            if ov is not None and nf:
                row[mode + "_over_nfct"] = ov / nf
        return row

    def level_rows(self):
        rows = []
        for mode in self.modes:
            for target in [0] + self.fills:
                if mode == "none" and target:
                    continue
                wl = "fill_%d" % target
                runs = [r for r in self.runs if r["mode"] == mode and r["workload"] == wl]
                if not runs:
                    continue
                live = median([r["live"] for r in runs])
                row = {"mode": mode, "target": target, "live": live}
                pp = self.per_packet(wl)["modes"].get(mode, {})
                row["pps"] = pp.get("pps")
                row["overhead_ns"] = pp.get("overhead_ns")
                for name in ("count", "stat"):
                    us = [
                        r["us"]
                        for r in self.reads
                        if r["file"] == name and self._at(r, target, mode)
                    ]
                    row["read_%s_us" % name] = median(us)
                row["idle_cpu_pct"] = self._idle(mode, target)
                row.update(self._memory(mode, target, live))
                rows.append(row)
        # Housekeeping: idle CPU above the same mode's at the empty table.
        empty = {r["mode"]: r["idle_cpu_pct"] for r in rows if r["target"] == 0}
        for r in rows:
            if r["idle_cpu_pct"] is not None and empty.get(r["mode"]) is not None:
                r["gc_cpu_pct"] = r["idle_cpu_pct"] - empty[r["mode"]]
        return rows

    @staticmethod
    def _at(rec, target, mode):
        return rec["mode"] == mode and rec["level"] == target

    def _idle(self, mode, target):
        pct = [
            100.0 * r["busy_ticks"] / (r["usec"] / 1e6 * r["hz"])
            for r in self.idles
            if self._at(r, target, mode)
        ]
        return median(pct)

    def _memory(self, mode, target, live):
        mems = [r for r in self.mems if self._at(r, target, mode)]
        if not mems:
            return {}
        m = mems[-1]
        out = {
            "slab_cache": m["cache"],
            "object_size": m["object_size"],
            "slab_size": m["slab_size"],
            "buckets": median([x["buckets"] for x in mems]),
        }
        delta = median([x["delta_kb"] * 1024 / x["live"] for x in mems if x["live"]])
        if live and delta is not None:
            # nf_conntrack's hash is allocated when the module loads (hashsize), before the
            # baseline: add it. icmp_ct's grows with the table, so the delta holds it.
            prealloc = out["buckets"] * 8 / live if mode == "nfct" else 0
            out["bytes_per_entry_delta"] = delta
            out["bucket_bytes_per_entry"] = out["buckets"] * 8 / live
            out["bytes_per_entry_total"] = delta + prealloc
        return out

    def checks(self):
        """Every packet sent arrived (no drop on the way)."""
        lost = [r for r in self.runs if r["rx"] != r["packets"]]
        return ["round %d %s %s: %d of %d packets arrived" % (
            r["round"], r["mode"], r["workload"], r["rx"], r["packets"]) for r in lost]

    def targets(self, basic, levels):
        out = []
        echo = basic.get("echo1", {})

        def add(name, value, limit, ok, fmt_spec):
            out.append({"target": name, "value": value, "limit": limit,
                        "met": None if value is None else ok(value),
                        "shown": fmt(value, fmt_spec)})

        add("overhead kr1 / nfct, one ping session", echo.get("kr1_over_nfct"), 0.5,
            lambda v: v <= 0.5, "{:.2f}")
        add("overhead kr0 / nfct, one ping session", echo.get("kr0_over_nfct"), 1.0,
            lambda v: v <= 1.0, "{:.2f}")
        if self.fills:
            top = max(self.fills)
            for mode in ("kr0", "kr1"):
                by = {r["target"]: r for r in levels if r["mode"] == mode}
                if top in by and 0 in by and by[0]["pps"]:
                    ratio = by[top]["pps"] / by[0]["pps"]
                else:
                    ratio = None
                add("%s flood at %d entries / at 0" % (mode, top), ratio, 0.9,
                    lambda v: v >= 0.9, "{:.2f}")
                r = by.get(top, {})
                for f in ("count", "stat"):
                    v = r.get("read_%s_us" % f)
                    add("%s read %s at %d entries (ms)" % (mode, f, top),
                        None if v is None else v / 1000, 10, lambda v: v < 10, "{:.2f}")
                add("%s GC CPU at %d entries (%% of a CPU)" % (mode, top), r.get("gc_cpu_pct"),
                    1, lambda v: v <= 1, "{:.2f}")
                # The limit is on the entry's slab slot; the buckets are reported beside it.
                add("%s slab slot per ICMP entry, at %d" % (mode, top), r.get("slab_size"), 128,
                    lambda v: v <= 128, "{:.0f}")
                add("%s bytes per entry, buckets included, at %d (reported)" % (mode, top),
                    r.get("bytes_per_entry_total"), "-", lambda v: None, "{:.0f}")
        return out

    def build(self, command, git, clock):
        basic = {w: self.per_packet(w) for w in BASIC + ["fill_%d" % t for t in [0] + self.fills]}
        levels = self.level_rows()
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "git": git,
            "kernel": self.meta.get("kernel"),
            "settings": self.meta,
            "clock": clock,
            "per_packet": basic,
            "levels": levels,
            "targets": self.targets(basic, levels),
            "lost_packets": self.checks(),
            "measurements": self.records,
        }


def table(rep):
    lines = []
    s = rep["settings"]
    lines.append("Kernel %s, %s rounds, %s packets per run, %s, git %s." % (
        rep["kernel"], s.get("rounds"), s.get("packets"), rep["clock"], rep["git"]))
    lines.append("")
    lines.append("Time per packet (ns, median over rounds; overhead over no tracking in "
                 "parentheses) and ratio of overheads:")
    lines.append("")
    lines.append("| workload | none | nf_conntrack | icmp_ct kr=0 | icmp_ct kr=1 "
                 "| kr0/nfct | kr1/nfct |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for w, row in rep["per_packet"].items():
        m = row["modes"]
        if not m:
            continue
        cells = []
        for mode in MODES:
            e = m.get(mode)
            if not e:
                cells.append("-")
            elif "overhead_ns" in e:
                cells.append("%.0f (+%.0f)" % (e["ns_per_packet"], e["overhead_ns"]))
            else:
                cells.append("%.0f" % e["ns_per_packet"])
        name = WHAT.get(w, "one session, %s live entries" % w[5:] if w.startswith("fill_") else w)
        lines.append("| %s: %s | %s | %s | %s |" % (
            w, name, " | ".join(cells), fmt(row.get("kr0_over_nfct"), "{:.2f}"),
            fmt(row.get("kr1_over_nfct"), "{:.2f}")))
    lines.append("")
    lines.append("The table at each level (medians): packets/s of the one-session flood, "
                 "microseconds per read of the count and of the stat file, CPU busy while idle "
                 "above the same mode's at the empty table (% of one CPU), memory:")
    lines.append("")
    lines.append("| mode | live entries | packets/s | count read us | stat read us "
                 "| idle CPU above empty % | slab object/slot | buckets "
                 "| bytes/entry (buckets incl.) |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rep["levels"]:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["mode"], fmt(r["live"]), fmt(r["pps"]), fmt(r.get("read_count_us")),
            fmt(r.get("read_stat_us")), fmt(r.get("gc_cpu_pct"), "{:.2f}"),
            "%s/%s" % (r["object_size"], r["slab_size"]) if "object_size" in r else "-",
            fmt(r.get("buckets")), fmt(r.get("bytes_per_entry_total"))))
    lines.append("")
    lines.append("Targets:")
    lines.append("")
    lines.append("| target | measured | limit | met |")
    lines.append("|---|---:|---:|---|")
    for t in rep["targets"]:
        met = {True: "yes", False: "no", None: "-"}[t["met"]]
        lines.append("| %s | %s | %s | %s |" % (t["target"], t["shown"], t["limit"], met))
    if rep["lost_packets"]:
        lines.append("")
        lines.append("Packets lost on the way (those runs measure less than they claim):")
        lines.extend("- " + x for x in rep["lost_packets"])
    return "\n".join(lines) + "\n"


def plot(rep, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: no matplotlib, no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode in TRACKERS:
        pts = sorted((r["live"], r["pps"]) for r in rep["levels"]
                     if r["mode"] == mode and r["pps"])
        if pts:
            ax.plot([max(p[0], 1) for p in pts], [p[1] for p in pts], marker="o",
                    label=LABEL[mode])
    base = [r["pps"] for r in rep["levels"] if r["mode"] == "none" and r["pps"]]
    if base:
        ax.axhline(base[0], color="grey", linestyle="--", label=LABEL["none"])
    ax.set_xscale("log")
    ax.set_xlabel("live entries (0 drawn at 1)")
    ax.set_ylabel("packets/s (guest instructions as time)")
    ax.set_ylim(bottom=0)
    ax.set_title("One ping session flooded, against the table's size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out")
    ap.add_argument("--command", default="")
    ap.add_argument("--git", default="unknown")
    ap.add_argument("--clock", default="guest clock (real time)",
                    help="what the guest's clock counted, for the table's first line")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    rep = Report(parse(args.raw)).build(args.command, args.git, args.clock)
    text = table(rep)
    sys.stdout.write(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        dated = os.path.join(args.out, "bench-%s.json" % stamp)
        with open(dated, "w") as f:
            json.dump(rep, f, indent=1, sort_keys=True)
            f.write("\n")
        shutil.copyfile(dated, os.path.join(args.out, "latest.json"))
        with open(os.path.join(args.out, "latest.md"), "w") as f:
            f.write(text)
        if not args.no_plot and plot(rep, os.path.join(args.out, "latest.png")):
            print("report: %s/latest.png" % args.out, file=sys.stderr)
        print("report: %s" % dated, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
