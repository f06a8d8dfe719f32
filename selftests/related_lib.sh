#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the flow and ICMP error tests (icmp_ct_related.sh, icmp_ct_flows.sh,
# icmp_ct_nat.sh).  Sourced after lib.sh, never run.
#
# - stat snapshots and delta checks ("new=1 related=1 destroyed_on_error=0");
# - /proc/net/ip_conntrack lines checked against a template with the timeout as a range;
# - small Python programs (UDP/TCP clients and servers, raw IP senders) run inside a
#   namespace, synchronised through files in a private temporary directory;
# - craft_errors.py (scapy) for hand-made ICMP errors and TCP segments.

# Variables set here are read by the tests that source this file.
# shellcheck disable=SC2034

# The system Python: it has python3-scapy (a pyenv shim earlier in PATH may not).
RL_PY=${ICMP_CT_PYTHON:-/usr/bin/python3}
RL_CRAFT=$SELFTESTS_DIR/craft_errors.py
RL_TMP=""

# rl_init: temporary directory (removed by rl_cleanup, which test_cleanup must call).
rl_init()
{
	RL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/icmp_ct_rel.XXXXXX") || return 1
}

rl_cleanup()
{
	[ -z "$RL_TMP" ] || rm -rf "$RL_TMP"
}

require_python()
{
	[ -x "$RL_PY" ] || ktap_skip_all "$RL_PY not found (set ICMP_CT_PYTHON)"
}

##############################################################################
# Counters

# Reading a namespace's files through "ip netns exec" costs most of a second in an emulated
# guest; a process parked in the namespace lets /proc/PID/net/... be read directly.
declare -gA RL_ANCHOR=()

# rl_anchor NS...: park a sleeping process in each NS (lib.sh's cleanup kills it).
rl_anchor()
{
	local ns pid want end

	for ns in "$@"; do
		ip netns exec "$ns" sleep 100000 </dev/null >/dev/null 2>&1 &
		pid=$!
		want="net:[$(stat -L -c %i "/run/netns/$ns")]" || return 1
		end=$((SECONDS + 30))
		until [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$want" ]; do
			[ "$SECONDS" -lt "$end" ] || return 1
			sleep 0.1
		done
		RL_ANCHOR[$ns]=$pid
	done
}

# ns_net_cat NS FILE: cat /proc/net/FILE of NS (through its anchor when it has one).
ns_net_cat()
{
	local pid=${RL_ANCHOR[$1]:-}

	if [ -n "$pid" ] && [ -e "/proc/$pid/net/$2" ]; then
		cat "/proc/$pid/net/$2"
	else
		ns_exec "$1" cat "/proc/net/$2"
	fi
}

# snap NS: the whole stat file of NS, to compare with later.
snap()
{
	ns_net_cat "$1" stat/icmp_ct
}

# delta_of NAME SNAP NOW: NOW's value minus SNAP's for NAME (empty if NAME is missing).
delta_of()
{
	# In bash: an awk process per counter costs seconds per check in a debug-kernel guest.
	local re="(^|"$'\n'")$1 (-?[0-9]+)"$'(\n|$)' old

	[[ $2 =~ $re ]] || return 1
	old=${BASH_REMATCH[2]}
	[[ $3 =~ $re ]] || return 1
	echo $((BASH_REMATCH[2] - old))
}

# nonzero_deltas SNAP NOW: "name:+d" for every counter that moved (hooks left out).
nonzero_deltas()
{
	local name moved=() d _

	while read -r name _; do
		[[ $name == hook_* ]] && continue
		d=$(delta_of "$name" "$1" "$2") || continue
		[ "$d" = 0 ] || moved+=("$name:+$d")
	done <<<"$2"
	echo "${moved[*]:-(none)}"
}

# deltas_met SNAP NOW "EXPR...": 0 if every EXPR holds; EXPR is name=N, name>=N or name<=N
# on the delta of that counter.  Prints the failing expressions.
deltas_met()
{
	local old=$1 now=$2 expr name op want d bad=()

	for expr in $3; do
		if [[ $expr =~ ^([a-z_]+)(\>=|\<=|=)([0-9]+)$ ]]; then
			name=${BASH_REMATCH[1]} op=${BASH_REMATCH[2]} want=${BASH_REMATCH[3]}
		else
			bad+=("bad expression '$expr'")
			continue
		fi
		if ! d=$(delta_of "$name" "$old" "$now"); then
			bad+=("$name: no such counter")
			continue
		fi
		case $op in
		=) [ "$d" -eq "$want" ] ;;
		'>=') [ "$d" -ge "$want" ] ;;
		'<=') [ "$d" -le "$want" ] ;;
		esac || bad+=("$name: +$d, expected $op$want")
	done
	[ ${#bad[@]} -eq 0 ] && return 0
	printf '%s\n' "${bad[@]}"
	return 1
}

# expect_deltas "desc" NS SNAP "EXPR..." [WAIT]: one subtest.  Waits up to WAIT seconds
# (default 5) for the expressions to hold (packets may still be on their way), then judges.
expect_deltas()
{
	local desc=$1 ns=$2 old=$3 exprs=$4 wait=${5:-5} now bad end

	end=$((SECONDS + wait))
	while :; do
		now=$(snap "$ns") || { ktap_msg "$desc: cannot read the counters"; ktap_test_fail "$desc"; return 1; }
		bad=$(deltas_met "$old" "$now" "$exprs") && break
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.2
	done
	if [ -z "$bad" ]; then
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_msg "$desc:" "$bad" "counters that moved: $(nonzero_deltas "$old" "$now")"
	ktap_test_fail "$desc"
	return 1
}

##############################################################################
# /proc/net/ip_conntrack

ct_list()
{
	ns_net_cat "$1" ip_conntrack
}

# ct_regex TEMPLATE: an anchored ERE for one listing line.  In TEMPLATE, @T@ stands for the
# timeout (captured), @N@ for any number, @S@ for any TCP state name, @A@ for an optional
# " [ASSURED]"; everything else is literal.
ct_regex()
{
	local re

	re=$(sed -e 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1")
	re=${re//@T@/([0-9]+)}
	re=${re//@N@/[0-9]+}
	re=${re//@S@/[A-Z_]+}
	re=${re//@A@/( \\[ASSURED\\])?}
	echo "^$re\$"
}

# ct_find NS TEMPLATE: print the listing lines of NS that match TEMPLATE.
ct_find()
{
	ct_list "$1" | grep -E "$(ct_regex "$2")"
}

# ct_timeout_ok LINE MIN MAX: the line's timeout (third field) lies within [MIN, MAX].
ct_timeout_ok()
{
	local t

	t=$(awk '{ print $3 }' <<<"$1")
	[[ $t =~ ^[0-9]+$ ]] && [ "$t" -ge "$2" ] && [ "$t" -le "$3" ]
}

# expect_line "desc" NS TEMPLATE MIN MAX: one subtest: exactly one line of NS matches
# TEMPLATE and its timeout lies within [MIN, MAX] (MAX - MIN, the time the test may take to
# get there, stretched by ICMP_CT_TIME_SCALE).
expect_line()
{
	local desc=$1 ns=$2 tmpl=$3 max=$5 lines n
	local min=$(($5 - ($5 - $4) * ICMP_CT_TIME_SCALE))

	[ "$min" -ge 0 ] || min=0

	lines=$(ct_find "$ns" "$tmpl")
	n=$(grep -c . <<<"$lines")
	if [ "$n" = 1 ] && ct_timeout_ok "$lines" "$min" "$max"; then
		ktap_msg "$lines"
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_msg "$desc: expected one line like '$tmpl' with a timeout in [$min, $max], found $n:" \
		"${lines:-(none)}" "listing of ${ns:-init}:" "$(ct_list "$ns" 2>&1)"
	ktap_test_fail "$desc"
	return 1
}

# expect_no_line "desc" NS ERE: one subtest: no listing line of NS matches ERE.
expect_no_line()
{
	local desc=$1 ns=$2 re=$3 lines

	lines=$(ct_list "$ns" | grep -E -- "$re")
	if [ -z "$lines" ]; then
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_msg "$desc: still listed:" "$lines"
	ktap_test_fail "$desc"
	return 1
}

##############################################################################
# Files and processes

# wait_file FILE [SECONDS] [PATTERN]: wait until FILE exists (and has a line matching
# PATTERN).
wait_file()
{
	local f=$1 end=$((SECONDS + ${2:-20})) pat=${3:-}

	while :; do
		if [ -e "$f" ] && { [ -z "$pat" ] || grep -qE -- "$pat" "$f"; }; then
			return 0
		fi
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# bg NS OUTFILE COMMAND...: run COMMAND in NS in the background, output to OUTFILE; its pid
# (ip netns exec execs it) in BG_PID.  lib.sh's cleanup kills whatever is left in the
# namespaces.
bg()
{
	local ns=$1 out=$2

	shift 2
	# Not through ns_exec: a backgrounded function would leave BG_PID a subshell's.
	if [ -z "$ns" ] || [ "$ns" = - ]; then
		"$@" >"$out" 2>&1 &
	else
		ip netns exec "$ns" "$@" >"$out" 2>&1 &
	fi
	BG_PID=$!
}

# bg_stop PID: end one background process started here (and wait for it).
bg_stop()
{
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

##############################################################################
# Python programs

# UDP client: connected socket with IP_RECVERR, so that an ICMP error about its datagram is
# reported (and shows that the error made it through every hook to the socket).
#   udp_client.py [--bind A] [--sport P] [--ttl N] [--df] [--size N] [--wait S] DST DPORT
# Prints "sent", "reply LEN", "error ERRNO", "send-error ERRNO" or "timeout".
RL_PY_UDP_CLIENT='
import argparse, errno, socket, sys
p = argparse.ArgumentParser()
p.add_argument("--bind", default="")
p.add_argument("--sport", type=int, default=0)
p.add_argument("--ttl", type=int, default=0)
p.add_argument("--df", action="store_true")
p.add_argument("--size", type=int, default=32)
p.add_argument("--count", type=int, default=1)
p.add_argument("--wait", type=float, default=0.0)
p.add_argument("dst")
p.add_argument("dport", type=int)
a = p.parse_args()
name = lambda e: errno.errorcode.get(e.errno, str(e.errno))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((a.bind, a.sport))
s.setsockopt(socket.IPPROTO_IP, 11, 1)            # IP_RECVERR
if a.ttl:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, a.ttl)
if a.df:
    s.setsockopt(socket.IPPROTO_IP, 10, 2)        # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.connect((a.dst, a.dport))
try:
    for _ in range(a.count):
        s.send(b"q" * a.size)
except OSError as e:
    print("send-error " + name(e))
    sys.exit(0)
if a.wait <= 0:
    print("sent")
    sys.exit(0)
s.settimeout(a.wait)
try:
    print("reply %d" % len(s.recv(65535)))
except socket.timeout:
    print("timeout")
except OSError as e:
    print("error " + name(e))
'

# UDP server: answers every datagram with the same bytes; logs "PEER_ADDR PEER_PORT LEN"
# per datagram; with GO_FILE, waits for that file before answering.
#   udp_server.py ADDR PORT READY_FILE LOG_FILE [GO_FILE]
RL_PY_UDP_SERVER='
import os, socket, sys, time
addr, port, ready, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
go = sys.argv[5] if len(sys.argv) > 5 else ""
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
open(ready, "w").close()
while True:
    data, peer = s.recvfrom(65535)
    with open(log, "a") as f:
        f.write("%s %d %d\n" % (peer[0], peer[1], len(data)))
    end = time.time() + 120
    while go and not os.path.exists(go) and time.time() < end:
        time.sleep(0.05)
    s.sendto(data, peer)
'

# TCP connect attempt: prints "connected", "timeout" or "error ERRNO".
#   tcp_connect.py DST PORT TIMEOUT [SPORT]
RL_PY_TCP_CONNECT='
import errno, socket, sys
s = socket.socket()
if len(sys.argv) > 4:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", int(sys.argv[4])))
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected", flush=True)
except socket.timeout:
    print("timeout", flush=True)
except OSError as e:
    print("error " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
'

# TCP server: accepts one connection, reads WANT bytes, answers "got N", waits for the
# client to close, closes.
#   tcp_server.py ADDR PORT READY_FILE WANT
RL_PY_TCP_SERVER='
import socket, sys
addr, port, ready, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(1)
open(ready, "w").close()
c, _ = l.accept()
n = 0
while n < want:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
c.sendall(b"got %d\n" % n)
while c.recv(65536):
    pass
c.close()
'

# TCP client: connects from SPORT, sends SIZE bytes, prints the server's answer, waits for
# STOP_FILE, closes (FIN), waits for the server's FIN, prints "closed".
#   tcp_client.py DST PORT SPORT SIZE STOP_FILE
RL_PY_TCP_CLIENT='
import os, socket, sys, time
dst, port, sport, size, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", sport))
s.settimeout(60)
s.connect((dst, port))
s.sendall(b"x" * size)
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(100)
    if not d:
        break
    buf += d
print(buf.decode().strip(), flush=True)
end = time.time() + 120
while not os.path.exists(stop) and time.time() < end:
    time.sleep(0.05)
s.shutdown(socket.SHUT_WR)
while s.recv(100):
    pass
s.close()
print("closed", flush=True)
'

# Raw IP datagrams of protocol PROTO (the kernel builds the IP header).  With WAIT > 0 the
# socket stays open that long for an answer (so the kernel does not answer it with
# "protocol unreachable"): prints "reply LEN" or "timeout", else "sent".
#   raw_send.py PROTO DST [COUNT [WAIT]]
RL_PY_RAW_SEND='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(sys.argv[1]))
for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
    s.sendto(b"generic-payload!", (sys.argv[2], 0))
wait = float(sys.argv[4]) if len(sys.argv) > 4 else 0
if wait <= 0:
    print("sent")
    sys.exit(0)
s.settimeout(wait)
try:
    while True:
        data, peer = s.recvfrom(65535)
        if peer[0] == sys.argv[2]:
            print("reply %d" % len(data))
            break
except socket.timeout:
    print("timeout")
'

# Raw IP echo for protocol PROTO: answers each datagram to its sender (also keeps the
# kernel from answering "protocol unreachable").  Logs the senders.
#   raw_echo.py PROTO READY_FILE LOG_FILE
RL_PY_RAW_ECHO='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(sys.argv[1]))
open(sys.argv[2], "w").close()
while True:
    data, peer = s.recvfrom(65535)
    with open(sys.argv[3], "a") as f:
        f.write("%s %d\n" % (peer[0], len(data)))
    s.sendto(b"generic-answer!!", (peer[0], 0))
'

# py NS PROGRAM_VAR ARGS...: run one of the programs above in NS (-S: standard library only,
# starts faster).
py()
{
	local ns=$1 prog=$2

	shift 2
	ns_exec "$ns" "$RL_PY" -S -c "${!prog}" "$@"
}

# bg_py NS OUTFILE PROGRAM_VAR ARGS...: py in the background (see bg).
bg_py()
{
	local ns=$1 out=$2 prog=$3

	shift 3
	bg "$ns" "$out" "$RL_PY" -S -c "${!prog}" "$@"
}

# craft NS ARGS...: craft_errors.py in NS (scapy).
craft()
{
	local ns=$1

	shift
	ns_exec "$ns" "$RL_PY" "$RL_CRAFT" "$@"
}

##############################################################################
# Namespaces

# ns_prepare NS...: no IPv6 (so that only the test's IPv4 packets move the counters) and no
# ICMP error rate limit (the tests expect every error they provoke).
ns_prepare()
{
	local ns

	for ns in "$@"; do
		ns_ipv6_off "$ns" || return 1
		ns_exec "$ns" sysctl -q -w net.ipv4.icmp_ratelimit=0 >/dev/null || return 1
	done
}

# ns_forwarding NS: route between interfaces.
ns_forwarding()
{
	ns_exec "$1" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
}

# craft_start NS: start one "craft_errors.py serve" in NS in the background (scapy takes
# long to start under TCG: start it early, import it once); craft_ready waits for it, then
# craft_send sends one packet per call.
craft_start()
{
	coproc CRAFT_PROC { ns_exec "$1" "$RL_PY" "$RL_CRAFT" serve 2>&1; }
}

# craft_ready [SECONDS]: wait until the server has started.
craft_ready()
{
	local line

	CRAFT_OUT="craft_errors.py serve is not running"
	[ -n "${CRAFT_PROC[0]:-}" ] || return 1
	read -r -t "${1:-240}" line <&"${CRAFT_PROC[0]}" && [ "$line" = ready ] && return 0
	CRAFT_OUT="craft_errors.py serve did not start: ${line:-no answer}"
	return 1
}

# craft_send ARGS...: one packet (craft_errors.py arguments); its answer in CRAFT_OUT.
craft_send()
{
	CRAFT_OUT="craft_errors.py is not running"
	[ -n "${CRAFT_PROC[1]:-}" ] || return 1
	printf '%s\n' "$*" >&"${CRAFT_PROC[1]}" || return 1
	read -r -t 60 CRAFT_OUT <&"${CRAFT_PROC[0]}" || return 1
	[[ $CRAFT_OUT == sent* ]]
}

# craft_stop: end the server (end of its input).
craft_stop()
{
	local pid=${CRAFT_PROC_PID:-}

	[ -n "${CRAFT_PROC[1]:-}" ] && eval "exec ${CRAFT_PROC[1]}>&-"
	[ -z "$pid" ] || wait "$pid" 2>/dev/null
}

# rl_section NAME: a comment line with the time since the start, for slow guests.
rl_section()
{
	echo "# --- $1 (t=${SECONDS}s)"
}
