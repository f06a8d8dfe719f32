#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The tables of `make profile` (bench/profile.sh): guest instructions per packet by function
for each mode, relative to the mode "none" when it ran, and icmp_ct's hottest source lines.

Each run directory holds blocks.txt (bench/tb_profile.c: "vaddr instructions" per block),
kallsyms and icmp_ct.text (bench/profile_guest.sh). A mode's profile is its second run minus
its first, divided by the packets the first one sent (the second sent twice as many)."""

import argparse
import bisect
import collections
import os
import subprocess

KERNEL_START = 0xFFFF800000000000


def module_functions(ko):
    """(offset in .text, name) of the module's functions, sorted."""
    out = subprocess.run(["objdump", "-t", "-C", ko], capture_output=True, text=True,
                         check=True).stdout
    funcs = []
    for line in out.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[2] == "F" and parts[3] == ".text":
            funcs.append((int(parts[0], 16), parts[5]))
    return sorted(funcs)


def blocks(run):
    """Instructions per block address, the kernel's symbols and the module's .text address."""
    counts = collections.Counter()
    with open(os.path.join(run, "blocks.txt")) as f:
        for line in f:
            addr, n = line.split()
            counts[int(addr, 16)] += int(n)
    syms = []
    with open(os.path.join(run, "kallsyms")) as f:
        for line in f:
            addr, _, name = line.split()[:3]
            syms.append((int(addr, 16), name))
    syms.sort()
    try:
        with open(os.path.join(run, "icmp_ct.text")) as f:
            text = int(f.read(), 16)
    except OSError:
        text = None
    return counts, syms, text


def per_packet(first, second, packets, mfuncs):
    """Instructions per packet by function name, and by offset in icmp_ct's .text, from two
    runs; each run's addresses are named with its own symbols (modules load elsewhere in
    every boot)."""
    maddrs = [a for a, _ in mfuncs]
    by_name, by_offset = collections.Counter(), collections.Counter()
    for sign, run in ((-1, first), (1, second)):
        counts, ksyms, text = blocks(run)
        kaddrs = [a for a, _ in ksyms]
        for addr, n in counts.items():
            if text is not None and 0 <= addr - text < 0x1000000:
                by_offset[addr - text] += sign * n
                i = bisect.bisect_right(maddrs, addr - text) - 1
                name = "icmp_ct: " + (mfuncs[i][1] if i >= 0 else "?")
            elif addr < KERNEL_START:
                name = "[user space]"
            else:
                i = bisect.bisect_right(kaddrs, addr) - 1
                name = ksyms[i][1] if i >= 0 else "?"
            by_name[name] += sign * n
    scale = 1 / packets
    return ({k: v * scale for k, v in by_name.items()},
            {k: v * scale for k, v in by_offset.items()})


def source_lines(ko, offsets):
    """Innermost file:line and up to three callers (inlined frames) of each .text offset."""
    out = subprocess.run(["addr2line", "-j", ".text", "-e", ko, "-a", "-i"] +
                         [hex(o) for o in offsets], capture_output=True, text=True,
                         check=True).stdout
    frames, current = {}, None
    for line in out.splitlines():
        if line.startswith("0x"):
            current = int(line, 16)
            frames[current] = []
        elif current is not None:
            frames[current].append(os.path.basename(line.split(" ")[0]))
    return {o: " <- ".join(f[:4]) for o, f in frames.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ko", required=True, help="icmp_ct.ko with debug information")
    ap.add_argument("--packets", type=int, required=True)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--title", default="")
    ap.add_argument("runs", nargs="+", help="MODE:FIRST_RUN_DIR:SECOND_RUN_DIR")
    args = ap.parse_args()

    mfuncs = module_functions(args.ko)
    profiles, modes = {}, []
    for spec in args.runs:
        mode, first, second = spec.split(":")
        modes.append(mode)
        by_name, by_offset = per_packet(first, second, args.packets, mfuncs)
        profiles[mode] = (by_offset, collections.Counter(by_name))

    print(f"Guest instructions per packet ({args.title})\n")
    base = profiles.get("none", (None, collections.Counter()))[1]
    for mode in modes:
        by_name = profiles[mode][1]
        total = sum(by_name.values())
        module = sum(v for k, v in by_name.items() if k.startswith("icmp_ct: "))
        extra = f", {total - sum(base.values()):.0f} more than none" if "none" in profiles else ""
        print(f"  {mode}: {total:.0f}{extra}; in icmp_ct's own code {module:.0f}")
    others = [m for m in modes if m != "none"]
    names = set().union(*(profiles[m][1] for m in modes))
    rows = sorted(names, key=lambda k: -max(abs(profiles[m][1][k] - base[k]) for m in others))
    print("\nBy function" + (", as a difference from none" if "none" in profiles else "") + ":\n")
    print("  " + "".join(f"{m:>9}" for m in modes) + "  function")
    for name in rows[:args.top]:
        cells = "".join(f"{profiles[m][1][name] - (base[name] if m != 'none' else 0):9.0f}"
                        for m in modes)
        print(f"  {cells}  {name[:100]}")

    for mode in others:
        addrs = profiles[mode][0]
        hot = sorted(addrs, key=lambda k: -addrs[k])[:400]
        lines = source_lines(args.ko, hot)
        by_line = collections.Counter()
        for offset in hot:
            by_line[lines.get(offset, "?")] += addrs[offset]
        if not by_line:
            continue
        print(f"\n{mode}: icmp_ct's hottest source lines (innermost first, then its callers):\n")
        for where, v in by_line.most_common(args.top):
            print(f"  {v:7.0f}  {where}")


if __name__ == "__main__":
    main()
