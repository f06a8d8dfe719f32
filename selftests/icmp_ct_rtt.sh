#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Round-trip times (Documentation/contract.rst: the listing's rtt=, /proc/net/stat/icmp_ct_rtt)
# and scripts/icmp_ct-top, which shows them:
#
#  1. a new namespace's icmp_ct_rtt has no samples and 33 buckets, 1 us to 2^32 us;
#  2. A pings B (ip_ct_icmp_keep_replied = 1): one sample per reply, their mean within an
#     order of magnitude of ping's own average; A lists the echo entry with rtt=, a value
#     between the histogram's min and max;
#  3. rtt= only on replied query entries: not on an [UNREPLIED] echo entry, not on a replied
#     UDP flow;
#  4. tc netem delays A's veth by 20 ms: every sample lands in the 20 ms bucket or above, and
#     none in a bucket above that of ping's own time for it (ping's time includes its system
#     calls, icmp_ct's does not: on the test kernel both bounds are the same bucket); the
#     listing's rtt= is at least the 20 ms;
#  5. keep_replied = 0 (the reply destroys the entry) and IPv6 echo count too;
#  6. scripts/icmp_ct-top --once as A's root shows the same entries, sources, counters,
#     INVALID reasons and histogram as procfs, and works as the root of an unprivileged user
#     namespace (a rootless container).

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=related_lib.sh
source "$SELFTESTS_DIR/related_lib.sh"

A_IP=10.77.0.1
B_IP=10.77.0.2
A_IP6=fd00:77::1
B_IP6=fd00:77::2
# Echo ids of A's pings (ping -e, a raw socket): plain, delayed, unanswered, the rest.
PLAIN_ID=101
DELAYED_ID=102
UNANSWERED_ID=103
OTHER_ID=104
UDP_PORT=7007
DELAY_MS=20
TOP=${ICMP_CT_TOP:-$SELFTESTS_DIR/../scripts/icmp_ct-top}
CONTAINER_UID=65534

require_module
require_python
require_cmd ip ping tc awk setpriv unshare
[ -r "$TOP" ] || ktap_skip_all "$TOP not found (set ICMP_CT_TOP)"

test_cleanup()
{
	rl_cleanup
}

ktap_header
ktap_plan 16

kmsg_mark
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
rl_init || ktap_bail_out "mktemp failed"
chmod 0755 "$RL_TMP"
ns_create A B || ktap_bail_out "cannot create namespaces"
for ns in "$A" "$B"; do
	ns_exec "$ns" sysctl -q -w net.ipv6.conf.default.accept_dad=0 >/dev/null
done
veth_pair "$A" veth0 "$A_IP/24" "$B" veth0 "$B_IP/24" || ktap_bail_out "cannot create veth"
{ ip -n "$A" addr add "$A_IP6/64" dev veth0 nodad &&
	ip -n "$B" addr add "$B_IP6/64" dev veth0 nodad; } || ktap_bail_out "cannot add IPv6 addresses"
rl_anchor "$A" || ktap_bail_out "cannot start a process in A"
sysctl_set "$A" ip_ct_icmp_keep_replied 1 || ktap_bail_out "keep_replied: $SYSCTL_ERR"
# No entry may expire while the test compares listings (a TCG guest is slow).
for knob in ip_ct_icmp_timeout ip_ct_icmpv6_timeout; do
	sysctl_set "$A" "$knob" 600 || ktap_bail_out "$knob: $SYSCTL_ERR"
done
# ping sends the id -e gives it only on a raw socket, which this range makes it use.
ns_exec "$A" sysctl -q -w net.ipv4.ping_group_range="1 0" >/dev/null ||
	ktap_bail_out "cannot set ping_group_range"

# rtt_file NS: A's /proc/net/stat/icmp_ct_rtt.
rtt_file()
{
	ns_net_cat "$1" stat/icmp_ct_rtt
}

# rtt_value TEXT NAME: NAME's value in an icmp_ct_rtt TEXT.
rtt_value()
{
	awk -v n="$2" '$1 == n { print $2 }' <<<"$1"
}

# bucket_deltas OLD NOW: "bound:count" for every bucket that grew from OLD to NOW.
bucket_deltas()
{
	# shellcheck disable=SC2016 # awk program
	awk 'NR == FNR { if ($1 ~ /^[0-9]+$/) old[$1] = $2; next }
		$1 ~ /^[0-9]+$/ && $2 != old[$1] { printf "%s%s:%d", sep, $1, $2 - old[$1]; sep = " " }' \
		<(echo "$1") <(echo "$2")
}

# ping_buckets PING_OUTPUT: "bound:count" of the buckets ping's own times (time=X ms) fall in.
ping_buckets()
{
	awk 'match($0, /time=[0-9.]+/) {
			us = substr($0, RSTART + 5, RLENGTH - 5) * 1000
			b = 1
			while (b <= us) b *= 2
			n[b]++
		}
		END { for (b = 1; b <= 4294967296; b *= 2) if (n[b]) { printf "%s%d:%d", sep, b, n[b]; sep = " " } }' \
		<<<"$1"
}

# bucket_of US: the upper bound of the bucket of a sample of US microseconds.
bucket_of()
{
	local b=1

	while [ "$b" -le "$1" ]; do
		b=$((b * 2))
	done
	echo "$b"
}

# samples_within LOW PING_BUCKETS OUR_BUCKETS ("bound:count" lists): as many of ours as of
# ping's, and, both sorted, each of ours in bucket LOW or above and in ping's bucket for it or
# below: ping's own time adds its system calls and its wake-up, which a slow guest stretches
# across a bucket's bound.
samples_within()
{
	local low=$1 ping ours i

	mapfile -t ping < <(tr ' ' '\n' <<<"$2" | awk -F: 'NF == 2 { for (i = 0; i < $2; i++) print $1 }')
	mapfile -t ours < <(tr ' ' '\n' <<<"$3" | awk -F: 'NF == 2 { for (i = 0; i < $2; i++) print $1 }')
	ktap_msg "buckets of ping's times: $2; of icmp_ct's samples: $3"
	[ "${#ping[@]}" -gt 0 ] && [ "${#ours[@]}" = "${#ping[@]}" ] || return 1
	for i in "${!ours[@]}"; do
		[ "${ours[$i]}" -ge "$low" ] && [ "${ours[$i]}" -le "${ping[$i]}" ] || return 1
	done
}

# ping_avg_us PING_OUTPUT: ping's average round trip in microseconds.
ping_avg_us()
{
	awk -F/ '/^rtt / { printf "%d\n", $5 * 1000 }' <<<"$1"
}

# samples_since OLD: samples A counted since OLD, an earlier copy of its icmp_ct_rtt.
samples_since()
{
	local old new

	old=$(rtt_value "$1" samples)
	new=$(rtt_value "$(rtt_file "$A")" samples)
	if [ -z "$old" ] || [ -z "$new" ]; then
		echo "no samples line"
		return 1
	fi
	echo $((new - old))
}

# ping_from NS ARGS...: ping from NS (one request every 0.2 s); its output in PING_OUT.
ping_from()
{
	local ns=$1

	shift
	PING_OUT=$(ns_exec "$ns" ping -n -i 0.2 -W 2 "$@" 2>&1)
}

##############################################################################
# 1. The file of a new namespace.

empty_file_ok()
{
	local text want i

	text=$(rtt_file "$A") || return 1
	want=$(printf 'samples 0\nmin 0\nmean 0\nmax 0')
	for i in $(seq 0 32); do
		want+=$(printf '\n%d 0' $((1 << i)))
	done
	[ "$text" = "$want" ] && return 0
	ktap_msg "got:" "$text"
	return 1
}
ktap_check "a new namespace's icmp_ct_rtt: no samples, buckets 1 us .. 2^32 us" empty_file_ok

##############################################################################
# 2. Plain pings.

ping_from "$A" -c 10 -e "$PLAIN_ID" "$B_IP"
ktap_msg "$(tail -n 2 <<<"$PING_OUT")"
plain_ping=$PING_OUT
rtt=$(rtt_file "$A")
ktap_expect_eq "10 echo replies at A: 10 samples" 10 "$(rtt_value "$rtt" samples)"

same_magnitude()
{
	local min mean max avg

	min=$(rtt_value "$rtt" min) mean=$(rtt_value "$rtt" mean) max=$(rtt_value "$rtt" max)
	avg=$(ping_avg_us "$plain_ping")
	ktap_msg "icmp_ct: min $min mean $mean max $max us; ping: average $avg us"
	[ -n "$avg" ] && [ "$min" -gt 0 ] && [ "$min" -le "$mean" ] && [ "$mean" -le "$max" ] &&
		[ $((mean * 10)) -ge "$avg" ] && [ "$mean" -le $((avg * 10)) ]
}
ktap_check "the mean is within an order of magnitude of ping's average (0 < min <= mean <= max)" \
	same_magnitude

# listed_rtt_within ID MIN MAX: A's echo entry of ID to B shows rtt=R with MIN <= R <= MAX.
listed_rtt_within()
{
	local tmpl line r

	tmpl="icmp     1 @T@ src=$A_IP dst=$B_IP type=8 code=0 id=$1 src=$B_IP dst=$A_IP type=0 code=0 id=$1 rtt=@N@ use=1"
	line=$(ct_find "$A" "$tmpl")
	r=$(grep -o 'rtt=[0-9]*' <<<"$line" | cut -d= -f2)
	[ -n "$line" ] || ktap_msg "no line like '$tmpl'; listing:" "$(ct_list "$A")"
	ktap_msg "$line"
	[ "$(grep -c . <<<"$r")" = 1 ] && [ "$r" -ge "$2" ] && [ "$r" -le "$3" ]
}
ktap_check "A lists the answered echo with rtt= between the histogram's min and max" \
	listed_rtt_within "$PLAIN_ID" "$(rtt_value "$rtt" min)" "$(rtt_value "$rtt" max)"

##############################################################################
# 3. rtt= only on replied query entries.

# B ignores this one echo request: its entry stays [UNREPLIED].
ns_exec "$B" sysctl -q -w net.ipv4.icmp_echo_ignore_all=1 >/dev/null
ns_exec "$A" ping -n -c 1 -W 1 -e "$UNANSWERED_ID" "$B_IP" >/dev/null 2>&1
ns_exec "$B" sysctl -q -w net.ipv4.icmp_echo_ignore_all=0 >/dev/null
bg_py "$B" "$RL_TMP/udp_server.out" RL_PY_UDP_SERVER "$B_IP" "$UDP_PORT" "$RL_TMP/udp.ready" \
	"$RL_TMP/udp.log"
wait_file "$RL_TMP/udp.ready" 60 || ktap_msg "the UDP server in B did not start"
udp_answer=$(py "$A" RL_PY_UDP_CLIENT --wait 5 "$B_IP" "$UDP_PORT")

rtt_only_on_replied_queries()
{
	local list line bad=0 kinds=""

	list=$(ct_list "$A")
	ktap_msg "UDP client: $udp_answer" "$list"
	while IFS= read -r line; do
		if [[ $line =~ ^icmp(v6)?\  ]] && [[ $line != *"[UNREPLIED]"* ]]; then
			[[ $line =~ \ rtt=[0-9]+\ use= ]] || { ktap_msg "no rtt=: $line"; bad=1; }
			kinds+=" replied-query"
		else
			[[ $line != *rtt=* ]] || { ktap_msg "rtt= where none belongs: $line"; bad=1; }
			[[ $line =~ ^icmp.*\[UNREPLIED\] ]] && kinds+=" unreplied-query"
			[[ $line =~ ^udp.*\[ASSURED\] ]] && kinds+=" replied-udp"
		fi
	done <<<"$list"
	# Each kind of line must be there, or the check above proves nothing.
	[[ $kinds == *replied-query* ]] && [[ $kinds == *unreplied-query* ]] &&
		[[ $kinds == *replied-udp* ]] && [ "$bad" = 0 ]
}
ktap_check "rtt= on replied echo entries only (not [UNREPLIED] echo, not a replied UDP flow)" \
	rtt_only_on_replied_queries

##############################################################################
# 4. A delay the firewall must see.

mod_probe sch_netem || ktap_msg "modprobe sch_netem: $MODPROBE_ERR"
if ns_exec "$A" tc qdisc add dev veth0 root netem delay "${DELAY_MS}ms"; then
	before=$(rtt_file "$A")
	ping_from "$A" -c 5 -e "$DELAYED_ID" "$B_IP"
	after=$(rtt_file "$A")
	ktap_msg "$(tail -n 2 <<<"$PING_OUT")"
	ktap_check "netem ${DELAY_MS} ms: the samples in the delay's bucket or above, none above ping's" \
		samples_within "$(bucket_of $((DELAY_MS * 1000)))" "$(ping_buckets "$PING_OUT")" \
		"$(bucket_deltas "$before" "$after")"
	ktap_check "netem ${DELAY_MS} ms: the listed rtt= is at least ${DELAY_MS} ms" \
		listed_rtt_within "$DELAYED_ID" $((DELAY_MS * 1000)) "$(rtt_value "$after" max)"
	ns_exec "$A" tc qdisc del dev veth0 root
else
	ktap_test_fail "netem ${DELAY_MS} ms: the samples in the delay's bucket or above, none above ping's"
	ktap_test_fail "netem ${DELAY_MS} ms: the listed rtt= is at least ${DELAY_MS} ms"
fi

##############################################################################
# 5. keep_replied = 0 and IPv6.

sysctl_set "$A" ip_ct_icmp_keep_replied 0 || ktap_msg "keep_replied=0: $SYSCTL_ERR"
before=$(rtt_file "$A")
old=$(snap "$A")
ping_from "$A" -c 3 -e "$OTHER_ID" "$B_IP"
expect_deltas "keep_replied=0: 3 replies destroy their entry" "$A" "$old" \
	"destroyed_on_reply=3 established=3"
ktap_expect_eq "keep_replied=0: the 3 replies are 3 samples" 3 "$(samples_since "$before")"
sysctl_set "$A" ip_ct_icmp_keep_replied 1 || ktap_msg "keep_replied=1: $SYSCTL_ERR"

before=$(rtt_file "$A")
ping_from "$A" -c 3 -e "$OTHER_ID" "$B_IP6"
ktap_msg "$(tail -n 2 <<<"$PING_OUT")"
ktap_expect_eq "IPv6: 3 echo replies are 3 samples" 3 "$(samples_since "$before")"

##############################################################################
# 6. icmp_ct-top.

# A malformed request makes an INVALID packet for the reasons section (a 4-byte echo).
ns_exec "$B" "$RL_PY" "$SELFTESTS_DIR/craft.py" --dst "$A_IP" --type 8 --icmp-len 4 >/dev/null
# Counters may move meanwhile (IPv6 neighbour discovery, MLD): the frame's lie between these.
stat_before=$(snap "$A")
top_out=$(ns_exec "$A" "$RL_PY" "$TOP" --once 2>&1)
top_rc=$?
stat=$(snap "$A")
list=$(ct_list "$A")
rtt=$(rtt_file "$A")
ktap_msg "$top_out"

# top_shows_procfs: each number of the frame is procfs's.
top_shows_procfs()
{
	local ok=0 want name value proto state count src low high

	[ "$top_rc" = 0 ] || { ktap_msg "exit status $top_rc"; ok=1; }
	# Entries per protocol and state, from the listing.
	while read -r count proto state; do
		want=$(printf '  %-8s %-12s %8d' "$proto" "$state" "$count")
		grep -qxF -- "$want" <<<"$top_out" || { ktap_msg "missing: '$want'"; ok=1; }
	done < <(awk '{ s = "REPLIED" }
		/\[ASSURED\]/ { s = "ASSURED" } /\[UNREPLIED\]/ { s = "UNREPLIED" }
		$1 == "tcp" { s = $4 } { print $1, s }' <<<"$list" | sort | uniq -c)
	# The busiest source: A itself, source of every entry here.
	count=$(grep -c "^[a-z0-9 ]* src=$A_IP " <<<"$list")
	src=$(awk '/^Busiest sources/ { getline; print $1, $2 }' <<<"$top_out")
	[ "$src" = "$A_IP $count" ] || { ktap_msg "busiest source: '$src', want '$A_IP $count'"; ok=1; }
	# Packet counters and every nonzero INVALID reason.
	for name in new established related invalid untracked; do
		value=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$top_out")
		low=$(rtt_value "$stat_before" "$name") high=$(rtt_value "$stat" "$name")
		if [ -z "$value" ] || [ "$value" -lt "$low" ] || [ "$value" -gt "$high" ]; then
			ktap_msg "$name: '$value', want $low..$high"
			ok=1
		fi
	done
	[ "$(rtt_value "$stat" invalid)" -gt 0 ] || { ktap_msg "no INVALID packet counted"; ok=1; }
	grep -q '^INVALID reasons$' <<<"$top_out" || { ktap_msg "no INVALID reasons section"; ok=1; }
	while read -r name value; do
		grep -qE "^  ${name#invalid_} +$value\$" <<<"$top_out" ||
			{ ktap_msg "reason $name: want $value"; ok=1; }
	done < <(awk 'NR == FNR { old[$1] = $2; next }
		$1 ~ /^invalid_/ && $2 != 0 && $2 == old[$1]' <(echo "$stat_before") <(echo "$stat"))
	return "$ok"
}
ktap_check "icmp_ct-top --once in A: entries per state, sources, counters, INVALID reasons" \
	top_shows_procfs

# top_shows_histogram: the summary line, one bar per bucket from the first to the last that
# has samples, with the file's counts, and the label of the delayed samples' bucket.
top_shows_histogram()
{
	local samples want bars

	samples=$(rtt_value "$rtt" samples)
	want="Echo round trips: $samples samples, min "
	grep -qF "$want" <<<"$top_out" || { ktap_msg "no '$want'"; return 1; }
	want=$(awk '$1 ~ /^[0-9]+$/ && $2 != 0 { printf "%s ", $2 }' <<<"$rtt")
	bars=$(awk '/\|/ && $NF != 0 { printf "%s ", $NF }' <<<"$top_out")
	[ "$bars" = "$want" ] || { ktap_msg "bars' counts '$bars', file's '$want'"; return 1; }
	grep -qE "^ +16\.4 ms - 32\.8 ms +\|#* +$(rtt_value "$rtt" 32768)\$" <<<"$top_out" || {
		ktap_msg "no bar '16.4 ms - 32.8 ms' with $(rtt_value "$rtt" 32768) samples"
		return 1
	}
}
ktap_check "icmp_ct-top --once in A: the echo histogram" top_shows_histogram

# --pid: the same namespace from outside, through /proc/PID/net.
# section TEXT TITLE: the lines of one section of a frame, its title included.
section()
{
	awk -v t="$2" '$0 == t { on = 1 } on && $0 == "" { exit } on' <<<"$1"
}

top_pid_ok()
{
	local out

	out=$("$RL_PY" "$TOP" --once --pid "${RL_ANCHOR[$A]}" 2>&1) || { ktap_msg "$out"; return 1; }
	if [ "$(head -n 1 <<<"$out" | cut -d' ' -f3)" = "$(readlink "/proc/${RL_ANCHOR[$A]}/ns/net")" ] &&
		[ "$(section "$out" "Entries by protocol and state")" = \
			"$(section "$top_out" "Entries by protocol and state")" ] &&
		[ -n "$(section "$out" "Entries by protocol and state")" ] &&
		grep -qF "Echo round trips: $(rtt_value "$rtt" samples) samples" <<<"$out"; then
		return 0
	fi
	ktap_msg "--pid ${RL_ANCHOR[$A]}:" "$out"
	return 1
}
ktap_check "icmp_ct-top --once --pid: A's namespace from the initial one" top_pid_ok

# Without --once: a frame a second (here every 0.5 s), each with the rates since the last.
top_refreshes()
{
	local out frames

	# Python takes seconds to start in a slow guest.
	out=$(timeout -s INT $((8 * ICMP_CT_TIME_SCALE)) ip netns exec "$A" "$RL_PY" "$TOP" --interval 0.5 2>&1)
	frames=$(grep -c '^icmp_ct-top ' <<<"$out")
	ktap_msg "$frames frames; the last:" "$(awk '/^icmp_ct-top /{ f = "" } { f = f $0 "\n" } END { printf "%s", f }' <<<"$out")"
	[ "$frames" -ge 2 ] && grep -qE '^  new +[0-9]+ +[0-9]+\.[0-9]$' <<<"$out"
}
ktap_check "icmp_ct-top refreshes: several frames, with rates after the first" top_refreshes

# The container: user CONTAINER_UID's user namespace, a network namespace made once its uid
# map exists (as container runtimes do, see icmp_ct_userns.sh); its root pings itself and
# runs icmp_ct-top.
# shellcheck disable=SC2016 # expanded by the container's shell
container_out=$(setpriv --reuid="$CONTAINER_UID" --regid="$CONTAINER_UID" --clear-groups -- \
	unshare --user --map-root-user -- unshare --net -- sh -c '
		ip link set lo up &&
			echo 1 > /proc/sys/net/ipv4/netfilter/ip_ct_icmp_keep_replied &&
			ping -n -q -c 2 -i 0.2 -W 2 127.0.0.1 >/dev/null || echo "setup failed"
		"$1" "$2" --once
		echo "status $?"
		echo "listing $(grep -c "rtt=" /proc/net/ip_conntrack)"
		echo "file $(head -n 1 /proc/net/stat/icmp_ct_rtt)"
	' sh "$RL_PY" "$TOP" </dev/null 2>&1)
ktap_msg "$container_out"

container_top_ok()
{
	local samples

	samples=$(sed -n 's/^file samples //p' <<<"$container_out")
	grep -qx "status 0" <<<"$container_out" && ! grep -q "setup failed" <<<"$container_out" &&
		grep -qx "listing 1" <<<"$container_out" &&
		grep -qE '^  icmp +REPLIED +1$' <<<"$container_out" &&
		grep -qE '^  127\.0\.0\.1 +1 ' <<<"$container_out" &&
		[ -n "$samples" ] && [ "$samples" -gt 0 ] &&
		grep -qF "Echo round trips: $samples samples" <<<"$container_out"
}
ktap_check "icmp_ct-top --once as an unprivileged user namespace's root: its own entry and samples" \
	container_top_ok

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
