#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A short run of the benchmark (bench/guest.sh, then bench/report.py without the plot), so
# that make check notices when `make bench` breaks: one round, a few hundred packets per
# workload, one small fill level. Its numbers mean nothing; what it checks:
#  1. the guest side finishes and writes its measurements;
#  2. the report turns them into the table and the JSON;
#  3. the table has a time per packet for every workload in every mode (none, nf_conntrack,
#     icmp_ct with keep_replied 0 and 1) and both ratios;
#  4. it has the filled level of every tracker (flood, count read, memory);
#  5. every packet sent reached the receiving namespace (the bench measured what it claims);
#  6. the kernel log stays clean.
# icmp_ct is unloaded at the end (loaded again if it was loaded before).

# Functions below run through the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"

BENCH_DIR=$(readlink -m "$SELFTESTS_DIR/../bench")
PYTHON=${PYTHON:-/usr/bin/python3}
WORKLOADS=(echo1 echo_ids udp errors fill_0 fill_1000)

require_module
require_cmd trafgen nft nsenter ip ping dmesg
[ -x "$BENCH_DIR/guest.sh" ] || ktap_skip_all "no $BENCH_DIR/guest.sh"
[ -x "$PYTHON" ] || ktap_skip_all "$PYTHON not found (needed by bench/report.py)"

ktap_header
ktap_plan 6

was_loaded=0
module_is_loaded && was_loaded=1
tmp=""
test_cleanup()
{
	[ "$was_loaded" = 1 ] && module_restore
	[ -n "$tmp" ] && rm -rf "$tmp"
}
tmp=$(mktemp -d) || ktap_bail_out "mktemp failed"
kmsg_mark

SECONDS=0
# The debug kernel's CPUs are seldom idle for the half second the bench waits for between
# measurements, which only the real bench needs: wait 5 s at most.
if BENCH_ROUNDS=1 BENCH_PACKETS=300 BENCH_FILLS=1000 BENCH_IDLE=1 BENCH_READS=5 BENCH_SETTLE=5 \
	"$BENCH_DIR/guest.sh" "$tmp/raw.txt" 2>"$tmp/guest.err" && [ -s "$tmp/raw.txt" ]; then
	ktap_msg "guest side: $SECONDS s, $(wc -l <"$tmp/raw.txt") measurements"
	ktap_test_pass "bench/guest.sh finishes and writes its measurements"
else
	ktap_msg "bench/guest.sh failed:" "$(tail -n 20 "$tmp/guest.err")"
	ktap_test_fail "bench/guest.sh finishes and writes its measurements"
fi

if "$PYTHON" "$BENCH_DIR/report.py" --raw "$tmp/raw.txt" --out "$tmp/out" --no-plot \
	--command smoke >"$tmp/table.md" 2>"$tmp/report.err" && [ -s "$tmp/out/latest.json" ]; then
	ktap_msg "$(cat "$tmp/table.md")"
	ktap_test_pass "bench/report.py writes the table and the JSON"
else
	ktap_msg "bench/report.py failed:" "$(tail -n 20 "$tmp/report.err")"
	ktap_test_fail "bench/report.py writes the table and the JSON"
fi

# full_row WORKLOAD: the table's row of WORKLOAD has a number in every mode's column and
# both ratios ("| w: what | none | nfct | kr0 | kr1 | kr0/nfct | kr1/nfct |").
full_row()
{
	local row
	row=$(grep "^| $1: " "$tmp/table.md") || { echo "no row"; return 1; }
	# shellcheck disable=SC2016 # awk program
	awk -F'|' 'NF == 9 { for (i = 3; i <= 8; i++) if ($i !~ /[0-9]/) exit 1; ok = 1 }
		END { exit !ok }' <<<"$row" || { echo "$row"; return 1; }
}

bad=""
for w in "${WORKLOADS[@]}"; do
	[ "$w" = fill_0 ] && continue
	[ "$w" = fill_1000 ] && continue
	why=$(full_row "$w") || bad+="$w: $why; "
done
for w in fill_0 fill_1000; do
	# No tracker has no table: its column stays empty from the first level on, and the
	# ratios need the none column of the same level only at level 0.
	row=$(grep "^| $w: " "$tmp/table.md") || { bad+="$w: no row; "; continue; }
	for col in 4 5 6; do
		[[ $(cut -d'|' -f"$col" <<<"$row") =~ [0-9] ]] || bad+="$w: column $col empty; "
	done
done
if [ -z "$bad" ]; then
	ktap_test_pass "time per packet of every workload in every mode, with both ratios"
else
	ktap_msg "$bad"
	ktap_test_fail "time per packet of every workload in every mode, with both ratios"
fi

bad=""
for mode in nfct kr0 kr1; do
	# | mode | live | pps | count us | stat us | idle % | object/slot | buckets | bytes |
	row=$(awk -F'|' -v m=" $mode " '$2 == m && $3 + 0 >= 1000' "$tmp/table.md" | head -n 1)
	if [ -z "$row" ]; then
		bad+="$mode: no level with 1000 entries; "
		continue
	fi
	for col in 4 5 9 10; do
		[[ $(cut -d'|' -f"$col" <<<"$row") =~ [0-9] ]] || bad+="$mode: column $col empty: $row; "
	done
done
if [ -z "$bad" ]; then
	ktap_test_pass "the filled level of every tracker: flood, count read, memory"
else
	ktap_msg "$bad"
	ktap_test_fail "the filled level of every tracker: flood, count read, memory"
fi

if grep -q "^Packets lost" "$tmp/table.md"; then
	ktap_msg "$(sed -n '/^Packets lost/,$p' "$tmp/table.md")"
	ktap_test_fail "every packet sent reached the receiver"
else
	ktap_test_pass "every packet sent reached the receiver"
fi

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
