#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/guest.sh OUT: the benchmark's guest side (run as root in a throwaway guest, see
# bench/run.sh). Writes one measurement per line to OUT ("kind key=value ..."), which
# bench/report.py turns into the table, the JSON and the plot.
#
# Modes, in this order in every round so that drift hits them alike:
#   none  no tracker (icmp_ct unloaded, no conntrack rule)
#   nfct  nf_conntrack, enabled by "ct state" rules
#   kr0   icmp_ct, ip_ct_icmp_keep_replied=0
#   kr1   icmp_ct, ip_ct_icmp_keep_replied=1
# Each mode gets a fresh pair of namespaces S (sender) and R (receiver), joined by veth. The
# load comes from trafgen in S: a packet socket, so S's own output hooks see nothing, and
# veth hands each packet to R's stack on the sending CPU before trafgen's next one, so
# trafgen's time is the time the stack took. R answers echo requests; the replies go back
# through S's input. Every mode has the same number of nftables rules in S and R (four
# counters, one per state: they also show how R classified each workload), so the
# difference between modes is the tracker. Entries live 7200 s: nothing expires.
#
# Per mode, in one pair of namespaces (BENCH_PACKETS packets per timed workload):
#   echo1     one ping session (one id) flooded, at the empty table
#   errors    ICMP fragmentation-needed about an echo R sent (RELATED)
#   echo_ids  a new id each packet (entry churn)
#   udp       a new UDP source port each packet (flow churn)
# then in a fresh pair, for N = 0 and each of BENCH_FILLS: R filled with [UNREPLIED] echo
# entries up to N live entries; the time to read the count and the stat file, the CPU busy
# while idle (the table's housekeeping), memory; and fill_N: echo1 flooded again
#
# Settings (environment): BENCH_ROUNDS (3), BENCH_FILL_ROUNDS (rounds, from the first, that
# also run the table series; 1: a million entries take minutes to fill under TCG),
# BENCH_PACKETS (20000), BENCH_FILLS ("10000 100000 1000000"), BENCH_SETTLE (seconds to wait
# at most for idle CPUs after a pair of namespaces is removed, 120), BENCH_IDLE (seconds of idle
# per level, 10), BENCH_READS (reads per latency sample, 200), BENCH_MODES ("none nfct kr0
# kr1"), BENCH_WORKLOADS (only these of echo1, errors, echo_ids and udp; default all),
# BENCH_HASHSIZE (nf_conntrack buckets; default the largest fill, at least 65536),
# ICMP_CT_KO.

# Functions below run through the EXIT trap of lib.sh.
# shellcheck disable=SC2317

set -u

BENCH_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=../selftests/lib.sh
source "$BENCH_DIR/../selftests/lib.sh"

OUT=${1:?usage: guest.sh OUT}
ROUNDS=${BENCH_ROUNDS:-3}
FILL_ROUNDS=${BENCH_FILL_ROUNDS:-1}
PACKETS=${BENCH_PACKETS:-20000}
FILLS=${BENCH_FILLS:-10000 100000 1000000}
IDLE=${BENCH_IDLE:-10}
SETTLE=${BENCH_SETTLE:-120}
READS=${BENCH_READS:-200}
MODES=${BENCH_MODES:-none nfct kr0 kr1}
WORKLOADS=${BENCH_WORKLOADS:-echo1 errors echo_ids udp}
S_IP=10.9.0.1
R_IP=10.9.0.2
S_MAC=02:00:0a:09:00:01
R_MAC=02:00:0a:09:00:02
ETH="eth(da=$R_MAC, sa=$S_MAC, type=0x0800)"
# Fill sources: R routes them to a blackhole, so it never answers them.
FILL_NET=10.8
# The inner flow of the errors workload: an echo R sends to S, never answered.
ERR_ID=4242
TIMEOUT=7200
NFCT_SYS=/proc/sys/net/netfilter
TRAFGEN="trafgen -o veth0 -P 1 --no-sock-mem --notouch-irq"

largest=65536
for f in $FILLS; do
	[ "$f" -gt "$largest" ] && largest=$f
done
HASHSIZE=${BENCH_HASHSIZE:-$largest}
# Room for every fill plus the churn of the other workloads.
MAX=$((2 * largest + 4 * PACKETS))

die()
{
	echo "bench: $*" >&2
	exit 1
}

log()
{
	echo "bench: $*" >&2
}

emit()
{
	echo "$*" >>"$OUT"
}

secs_since()
{
	local now=${EPOCHREALTIME/[.,]/} then=${1/[.,]/}
	printf '%d.%d' $(((now - then) / 1000000)) $(((now - then) / 100000 % 10))
}

for c in trafgen nft ip ping nsenter modprobe insmod rmmod; do
	command -v "$c" >/dev/null || die "$c not found"
done
[ -f "$ICMP_CT_KO" ] || die "no module at $ICMP_CT_KO (set ICMP_CT_KO)"
[ "$PACKETS" -le 65536 ] || die "BENCH_PACKETS above 65536 would repeat ids and ports"
TMP=$(mktemp -d) || die "mktemp"
declare -A AG_W AG_R AG_PID
nfct_saved=""
test_cleanup()
{
	local p
	for p in "${AG_PID[@]}"; do
		kill "$p" 2>/dev/null
	done
	rm -rf "$TMP"
	# Leave nf_conntrack as found (the selftests share the guest).
	if [ -n "$nfct_saved" ]; then
		read -r p max <<<"$nfct_saved"
		echo "$p" >/sys/module/nf_conntrack/parameters/hashsize
		echo "$max" >$NFCT_SYS/nf_conntrack_max
	fi
}
mkfifo "$TMP/sleep"
exec {SLEEP_FD}<>"$TMP/sleep"

##############################################################################
# Agents: one bash per namespace, reading commands from a FIFO, so that a sysctl write or a
# counter read costs no process (a process start takes a second or more under TCG).

# agent_start NS: the agent of namespace NS, working in TMP.
agent_start()
{
	local ns=$1 in=$TMP/ag.$1.in out=$TMP/ag.$1.out w r
	mkfifo "$in" "$out" || return 1
	(cd "$TMP" && exec nsenter --net="/run/netns/$ns" bash --norc --noprofile) <"$in" >"$out" 2>&1 &
	AG_PID[$ns]=$!
	exec {w}>"$in"
	exec {r}<"$out"
	AG_W[$ns]=$w
	AG_R[$ns]=$r
	[ "$(ag "$ns" 'echo hello')" = hello ]
}

agent_stop()
{
	local w=${AG_W[$1]} r=${AG_R[$1]}
	kill "${AG_PID[$1]}" 2>/dev/null
	wait "${AG_PID[$1]}" 2>/dev/null
	exec {w}>&- {r}<&-
	unset "AG_PID[$1]" "AG_W[$1]" "AG_R[$1]"
}

# ag NS CODE: run the bash code CODE in NS's agent: its output, its exit status.
ag()
{
	local ns=$1 line
	printf '%s\n%s\n' "$2" 'echo "__ag_end $?"' >&"${AG_W[$ns]}" || return 125
	while IFS= read -r -u "${AG_R[$ns]}" line; do
		case $line in
		"__ag_end "*) return "${line#__ag_end }" ;;
		esac
		printf '%s\n' "$line"
	done
	return 125
}

# put NS PATH=VALUE...: write sysctls (PATH under /proc/sys) in NS.
put()
{
	local ns=$1 kv code=""
	shift
	for kv in "$@"; do
		code+="echo '${kv#*=}' > /proc/sys/${kv%%=*} || exit_code=1;"
	done
	ag "$ns" "exit_code=0; $code (exit \$exit_code)" || die "in $ns: $* failed"
}

##############################################################################
# Modes and namespaces

mode_enter()
{
	case $1 in
	none | nfct)
		if module_is_loaded; then
			rmmod icmp_ct || die "rmmod icmp_ct"
		fi
		;;
	kr0 | kr1)
		module_is_loaded || insmod "$ICMP_CT_KO" || die "insmod $ICMP_CT_KO"
		echo "$MAX" >"$ICMP_CT_SYSCTL_DIR/ip_conntrack_max" || die "ip_conntrack_max"
		;;
	*) die "unknown mode $1" ;;
	esac
}

# The ruleset of MODE: four counting rules, one per state: c1 new, c2 established,
# c3 related, c4 invalid (named counters: "nft reset counters" reads and clears them).
mode_ruleset()
{
	local i states=(new established related invalid)
	echo "table inet bench {"
	printf 'counter %s { }\n' c1 c2 c3 c4
	echo "chain input { type filter hook input priority 0; policy accept;"
	for i in 1 2 3 4; do
		case $1 in
		none) echo "meta mark 0x1000$i counter name c$i" ;;
		nfct) echo "ct state ${states[i - 1]} counter name c$i" ;;
		kr*) echo "meta mark and 0xf == $i counter name c$i" ;;
		esac
	done
	printf '}\n}\n'
}

# pair_setup MODE: fresh S and R for MODE, with the rules and the tracker's settings.
pair_setup()
{
	local mode=$1 ns ignore sysctls=()
	S=bench-s-$RANDOM
	R=bench-r-$RANDOM
	for ns in "$S" "$R"; do
		ip netns add "$ns" || die "ip netns add"
		NS_LIST+=("$ns")
	done
	ip link add veth0 netns "$S" address $S_MAC type veth peer name veth0 netns "$R" address $R_MAC ||
		die "veth"
	ip -n "$S" -batch - <<-EOF || die "ip in S"
		link set lo up
		addr add $S_IP/24 dev veth0
		link set veth0 up
		neigh replace $R_IP lladdr $R_MAC dev veth0 nud permanent
	EOF
	ip -n "$R" -batch - <<-EOF || die "ip in R"
		link set lo up
		addr add $R_IP/16 dev veth0
		link set veth0 up
		neigh replace $S_IP lladdr $S_MAC dev veth0 nud permanent
		route add blackhole $FILL_NET.0.0/16
	EOF
	mode_ruleset "$mode" >"$TMP/rules.nft"
	case $mode in
	kr*)
		sysctls=(net/ipv4/netfilter/ip_ct_mark_mask=15
			"net/ipv4/netfilter/ip_ct_icmp_keep_replied=${mode#kr}"
			net/ipv4/netfilter/ip_ct_icmp_timeout="$TIMEOUT"
			net/ipv4/netfilter/ip_ct_udp_timeout="$TIMEOUT"
			net/ipv4/netfilter/ip_ct_udp_timeout_stream="$TIMEOUT")
		;;
	nfct)
		sysctls=(net/netfilter/nf_conntrack_icmp_timeout="$TIMEOUT"
			net/netfilter/nf_conntrack_udp_timeout="$TIMEOUT"
			net/netfilter/nf_conntrack_udp_timeout_stream="$TIMEOUT")
		;;
	esac
	for ns in "$S" "$R"; do
		agent_start "$ns" || die "no agent in $ns"
		put "$ns" net/ipv6/conf/all/disable_ipv6=1 net/ipv6/conf/default/disable_ipv6=1
		# Raw-socket ping (so that -e sets the id); S never answers an echo.
		ignore=0
		[ "$ns" = "$S" ] && ignore=1
		put "$ns" "net/ipv4/ping_group_range=1 0" "net/ipv4/icmp_echo_ignore_all=$ignore"
		ag "$ns" "nft -f rules.nft" || die "nft rules in $ns"
		[ ${#sysctls[@]} = 0 ] || put "$ns" "${sysctls[@]}"
	done
}

# pair_teardown: remove S and R, and wait until the kernel has freed them: a namespace is
# freed by a worker after "ip netns delete" returns, which would otherwise bill the next
# measurement for freeing a million entries.
pair_teardown()
{
	local t0=$EPOCHREALTIME
	agent_stop "$S"
	agent_stop "$R"
	ns_delete "$S"
	ns_delete "$R"
	settle
	log "$MODE: namespaces removed in $(secs_since "$t0") s"
}

# settle: wait (at most BENCH_SETTLE seconds) for half a second in which no CPU was busy.
settle()
{
	local i b0
	for ((i = 0; i < 2 * SETTLE; i++)); do
		b0=$(busy_ticks)
		read -r -t 0.5 -u "$SLEEP_FD"
		[ "$(busy_ticks)" -gt "$b0" ] || return 0
	done
	log "$MODE: the CPUs did not settle"
}

##############################################################################
# Measurements

# busy_ticks: CPU time (all CPUs, USER_HZ ticks) not idle since boot.
busy_ticks()
{
	local user nice sys irq sirq steal
	# cpu user nice system idle iowait irq softirq steal ...
	read -r _ user nice sys _ _ irq sirq steal _ </proc/stat
	echo $((user + nice + sys + irq + sirq + steal))
}

rx_packets()
{
	rx_packets_pid "${AG_PID[$R]}" veth0
}

# classified: "new est rel inv", the packets R's rules counted since the last call.
classified()
{
	# shellcheck disable=SC2016 # awk program
	ag "$R" "nft reset counters table inet bench" |
		awk '$1 == "counter" { name = $2 } $1 == "packets" && name { v[name] = $2; name = "" }
			END { print v["c1"] + 0, v["c2"] + 0, v["c3"] + 0, v["c4"] + 0 }'
}

# tracker_count: live entries in R (0 without a tracker).
tracker_count()
{
	case $MODE in
	kr*) ag "$R" "read -r c < $ICMP_CT_SYSCTL_DIR/ip_conntrack_count && echo \$c" ;;
	nfct) ag "$R" "read -r c < $NFCT_SYS/nf_conntrack_count && echo \$c" ;;
	*) echo 0 ;;
	esac
}

# send WORKLOAD LIVE PACKET: trafgen sends PACKETS packets of PACKET from S; one
# measurement line: trafgen's time, CPU busy, what R received, how R's rules classified it.
send()
{
	local workload=$1 live=$2 rx0 rx1 b0 b1 out sec usec cls
	printf '{ %s, %s }\n' "$ETH" "$3" >"$TMP/$workload.cfg"
	rx0=$(rx_packets)
	b0=$(busy_ticks)
	out=$(ag "$S" "$TRAFGEN -i $workload.cfg -n $PACKETS") || die "trafgen: $out"
	b1=$(busy_ticks)
	rx1=$(rx_packets)
	# "\r  S sec, U usec on CPU0 (N packets)"
	read -r sec usec < <(tr -d '\r' <<<"$out" |
		sed -n 's/^ *\([0-9][0-9]*\) sec, \([0-9][0-9]*\) usec on CPU.*/\1 \2/p' | head -n 1)
	[ -n "${usec:-}" ] || die "cannot read trafgen's time: $out"
	cls=$(classified)
	# shellcheck disable=SC2086 # four numbers
	set -- $cls
	emit "run round=$ROUND mode=$MODE workload=$workload live=$live packets=$PACKETS" \
		"usec=$((sec * 1000000 + usec)) busy_ticks=$((b1 - b0)) rx=$((rx1 - rx0))" \
		"new=$1 est=$2 rel=$3 inv=$4 entries_after=$(tracker_count)"
}

# read_latency LIVE: microseconds per read (open, read all, close) of the count and of the
# stat file, from R, averaged over READS reads or as many as fit in a second.
read_latency()
{
	local live=$1 f name us
	case $MODE in
	kr*) set -- "count=$ICMP_CT_SYSCTL_DIR/ip_conntrack_count" "stat=$ICMP_CT_STAT" ;;
	nfct) set -- "count=$NFCT_SYS/nf_conntrack_count" "stat=/proc/net/stat/nf_conntrack" ;;
	*) return 0 ;;
	esac
	for f in "$@"; do
		name=${f%%=*}
		# shellcheck disable=SC2016 # the agent's code
		us=$(ag "$R" 'f='"${f#*=}"' n='"$READS"'; mapfile -t v <"$f"; s=${EPOCHREALTIME/./}
			for ((i = 1; i <= n; i++)); do
				mapfile -t v <"$f"; e=${EPOCHREALTIME/./}
				((e - s < 1000000)) || break
			done
			echo $(((e - s) / (i > n ? n : i)))')
		emit "read round=$ROUND mode=$MODE level=$LEVEL live=$live file=$name us=$us"
	done
}

# idle_cpu LIVE: CPU busy over IDLE seconds without traffic.
idle_cpu()
{
	local b0 b1 t0
	[ "$IDLE" -gt 0 ] || return 0
	t0=${EPOCHREALTIME/[.,]/}
	b0=$(busy_ticks)
	read -r -t "$IDLE" -u "$SLEEP_FD"
	b1=$(busy_ticks)
	emit "idle round=$ROUND mode=$MODE level=$LEVEL live=$1 busy_ticks=$((b1 - b0))" \
		"usec=$((${EPOCHREALTIME/[.,]/} - t0)) hz=$HZ"
}

meminfo_kb()
{
	local k v s=0 vm=0
	while read -r k v _; do
		case $k in
		Slab:) s=$v ;;
		VmallocUsed:) vm=$v ;;
		esac
	done </proc/meminfo
	echo $((s + vm))
}

# memory LIVE BASE_KB: Slab + VmallocUsed since BASE_KB, the table's buckets, and the slab
# cache of the entries (object and slot size).
memory()
{
	local live=$1 base=$2 buckets cache=none d osz=0 ssz=0
	case $MODE in
	kr*)
		buckets=$(ag "$R" "read -r b < $ICMP_CT_SYSCTL_DIR/ip_conntrack_buckets && echo \$b")
		# The entry cache's name is the module's business: the one cache named after it.
		for d in /sys/kernel/slab/icmp_ct*; do
			[ -e "$d" ] && cache=${d##*/} && break
		done
		;;
	nfct)
		buckets=$(ag "$R" "read -r b < $NFCT_SYS/nf_conntrack_buckets && echo \$b")
		cache=nf_conntrack
		;;
	*) return 0 ;;
	esac
	d=/sys/kernel/slab/$cache
	if [ -r "$d/object_size" ]; then
		osz=$(<"$d/object_size")
		ssz=$(<"$d/slab_size")
	fi
	emit "mem round=$ROUND mode=$MODE level=$LEVEL live=$live delta_kb=$(($(meminfo_kb) - base))" \
		"buckets=$buckets object_size=$osz slab_size=$ssz cache=$cache"
}

# level LIVE BASE_KB: the measurements of a table holding LIVE entries (filled to LEVEL).
level()
{
	memory "$1" "$2"
	read_latency "$1"
	idle_cpu "$1"
}

##############################################################################
# Workloads

ECHO1="ipv4(sa=$S_IP, da=$R_IP, ttl=64), icmp4(type=8, code=0, id=1, seq=1), fill(0x55, 56)"

# wanted WORKLOAD: whether BENCH_WORKLOADS asks for WORKLOAD.
wanted()
{
	[[ " $WORKLOADS " == *" $1 "* ]]
}

workloads_basic()
{
	! wanted echo1 || send echo1 "$(tracker_count)" "$ECHO1"
	# The flow the errors are about: an echo from R that S never answers.
	ag "$R" "ping -n -q -c 1 -W 0.2 -e $ERR_ID $S_IP >/dev/null"
	classified >/dev/null
	! wanted errors || send errors "$(tracker_count)" "ipv4(sa=$S_IP, da=$R_IP, ttl=64),
		icmp4(type=3, code=4, mtu=1400), ipv4(sa=$R_IP, da=$S_IP, ttl=64),
		icmp4(type=8, code=0, id=$ERR_ID, seq=1)"
	! wanted echo_ids || send echo_ids "$(tracker_count)" "ipv4(sa=$S_IP, da=$R_IP, ttl=64),
		icmp4(type=8, code=0, id=dinc(0, 65535), seq=1), fill(0x55, 56)"
	! wanted udp || send udp "$(tracker_count)" "ipv4(sa=$S_IP, da=$R_IP, ttl=64),
		udp(sp=dinc(0, 65535), dp=9), fill(0x55, 56)"
}

# fill_to TARGET STAGE: echo requests from FILL_NET.STAGE.1-17 with ids 0-65535 until R
# holds TARGET entries. Both fields step each packet; 17 and 65536 have no common factor,
# so the first 17 * 65536 packets of a stage are all distinct.
fill_to()
{
	local target=$1 stage=$2 need t0
	need=$((target - $(tracker_count)))
	[ "$need" -gt 0 ] || return 0
	[ "$need" -le $((17 * 65536)) ] || die "cannot add $need entries in one stage"
	printf '{ %s, %s }\n' "$ETH" "ipv4(sa=$FILL_NET.$stage.1, sa[3]=dinc(1, 17), da=$R_IP,
		ttl=64), icmp4(type=8, code=0, id=dinc(0, 65535), seq=1), fill(0x55, 56)" >"$TMP/fill.cfg"
	t0=$EPOCHREALTIME
	ag "$S" "$TRAFGEN -i fill.cfg -n $need >/dev/null" || die "trafgen fill"
	classified >/dev/null
	log "$MODE: filled to $(tracker_count) entries (target $target) in $(secs_since "$t0") s"
}

mode_round()
{
	local base live target stage=1
	mode_enter "$MODE"
	pair_setup "$MODE"
	workloads_basic
	pair_teardown
	[ "$ROUND" -le "$FILL_ROUNDS" ] || return 0
	# The table series in a pair of its own: the churn above left thousands of entries.
	pair_setup "$MODE"
	base=$(meminfo_kb)
	LEVEL=0
	level 0 "$base"
	send fill_0 0 "$ECHO1"
	if [ "$MODE" != none ]; then
		for target in $FILLS; do
			LEVEL=$target
			fill_to "$target" $stage
			stage=$((stage + 1))
			live=$(tracker_count)
			level "$live" "$base"
			send "fill_$target" "$live" "$ECHO1"
		done
	fi
	pair_teardown
}

##############################################################################

HZ=$(getconf CLK_TCK)
: >"$OUT"
emit "meta kernel=$(uname -r) cpus=$(nproc)" \
	"mem_kb=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo) rounds=$ROUNDS" \
	"fill_rounds=$FILL_ROUNDS" \
	"packets=$PACKETS fills=${FILLS// /,} idle_s=$IDLE reads=$READS modes=${MODES// /,}" \
	"hashsize=$HASHSIZE max=$MAX"

# nf_conntrack sized for the largest fill, as an admin expecting that many entries would.
mod_probe nf_conntrack nft_ct || die "modprobe nf_conntrack nft_ct: $MODPROBE_ERR"
nfct_saved="$(</sys/module/nf_conntrack/parameters/hashsize) $(<$NFCT_SYS/nf_conntrack_max)"
echo "$HASHSIZE" >/sys/module/nf_conntrack/parameters/hashsize || die "nf_conntrack hashsize"
echo "$MAX" >$NFCT_SYS/nf_conntrack_max || die "nf_conntrack_max"
# icmp_ct comes and goes with the modes: keep the netfilter static keys enabled meanwhile.
nf_hooks_pin || die "cannot pin the netfilter hooks (nft)"

start=$SECONDS
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for MODE in $MODES; do
		log "round $ROUND, mode $MODE ($((SECONDS - start)) s)"
		mode_round
	done
done
if module_is_loaded; then
	rmmod icmp_ct || die "rmmod icmp_ct"
fi
emit "meta elapsed_s=$((SECONDS - start))"
log "done in $((SECONDS - start)) s"
