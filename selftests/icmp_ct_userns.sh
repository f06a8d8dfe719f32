#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The listing belongs to the namespace's root (Documentation/contract.rst): a network namespace
# made by an unprivileged user (unshare --user --map-root-user --net, as a rootless container
# does) has /proc/net/ip_conntrack and the stat files owned by the root of its user namespace,
# as nf_conntrack's /proc/net/nf_conntrack is.  (procfs gives a namespace's files the owner
# of its /proc/net, which is that root; this test keeps it so.)
#
#  1. user 65534 creates a user and network namespace ("the container"); its root turns on
#     ip_ct_icmp_keep_replied and pings itself over loopback;
#  2. inside, /proc/net/ip_conntrack is owned by 0:0 with mode 0440, /proc/net/stat/icmp_ct
#     by 0:0, and the container's root reads its own echo entry;
#  3. the container's root cannot read the table of namespace A (made by the host's root, an
#     entry in it) through /proc/PID/net, nor can a second container of user 65533 read the
#     first container's table; the host's root reads the container's table.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

OWNER=65534
OTHER=65533
ECHO_LINE='src=127\.0\.0\.1 dst=127\.0\.0\.1 type=8 code=0 .* type=0 code=0 '

require_module
require_cmd ip ping setpriv unshare stat readlink

TMP=""
CONTAINER=""
test_cleanup()
{
	[ -n "$CONTAINER" ] && kill "$CONTAINER" 2>/dev/null
	[ -n "$TMP" ] && rm -rf "$TMP"
}

# in_container UID SCRIPT ARGS...: sh -c SCRIPT as the root of a new user namespace of UID,
# in a new network namespace made once the user namespace has its uid map, as container
# runtimes do (a network namespace made together with its user namespace, before the map
# exists, has no root to give its files to: they stay the host's root's, as nf_conntrack's
# do).  Runs in place of the calling (sub)shell, so that a background job's $! is the
# container's process.
in_container()
{
	local uid=$1

	shift
	exec setpriv --reuid="$uid" --regid="$uid" --clear-groups -- \
		unshare --user --map-root-user -- unshare --net -- sh -c "$@"
}

ktap_header
if ! why=$(in_container "$OWNER" true 2>&1); then
	ktap_skip_all "user $OWNER cannot create a user namespace ($why; user.max_user_namespaces=$(sysctl -n user.max_user_namespaces 2>&1), kernel.unprivileged_userns_clone=$(sysctl -n kernel.unprivileged_userns_clone 2>&1))"
fi
ktap_plan 8

kmsg_mark
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
TMP=$(mktemp -d) || ktap_bail_out "mktemp -d failed"
chmod 0777 "$TMP"

# Namespace A, the host's: an echo entry that stays (keep_replied).
ns_create A || ktap_bail_out "cannot create namespace A"
ns_anchor "$A" A_PID || ktap_bail_out "cannot start a process in namespace A"
sysctl_set "$A" ip_ct_icmp_keep_replied 1 || ktap_msg "A: keep_replied: $SYSCTL_ERR"
ping_ok "$A" 127.0.0.1 1 >/dev/null

# The container: its findings go to $TMP/container, then it sleeps (same PID: setpriv,
# unshare and sh exec), keeping its namespace for the checks from outside.
# shellcheck disable=SC2016 # expanded by the container's shell
in_container "$OWNER" '
	{
		ip link set lo up &&
			echo 1 > /proc/sys/net/ipv4/netfilter/ip_ct_icmp_keep_replied &&
			ping -n -q -c 1 -W 2 127.0.0.1 >/dev/null &&
			echo "setup ok" || echo "setup failed"
		echo "listing $(stat -c "%u:%g %a" /proc/net/ip_conntrack 2>&1)"
		echo "stat $(stat -c "%u:%g" /proc/net/stat/icmp_ct 2>&1)"
		echo "own $(grep -c "$3" /proc/net/ip_conntrack 2>&1)"
		echo "host $(cat "/proc/$2/net/ip_conntrack" 2>&1 | head -n 1)"
	} > "$1.tmp"
	mv "$1.tmp" "$1"
	exec sleep 600
' sh "$TMP/container" "$A_PID" "$ECHO_LINE" </dev/null >/dev/null 2>&1 &
CONTAINER=$!

for _ in $(seq 100); do
	[ -e "$TMP/container" ] && break
	sleep 0.1
done
# finding NAME: the container's line NAME, without the name.
finding()
{
	sed -n "s/^$1 //p" "$TMP/container" 2>/dev/null
}
ktap_msg "container: $(tr '\n' ';' <"$TMP/container" 2>&1)"

ktap_expect_eq "container: its root set keep_replied and pinged itself" "ok" "$(finding setup)"
ktap_expect_eq "container: /proc/net/ip_conntrack is its root's, mode 0440" "0:0 440" \
	"$(finding listing)"
ktap_expect_eq "container: /proc/net/stat/icmp_ct is its root's" "0:0" "$(finding stat)"
ktap_expect_eq "container: its root reads its own table (the echo entry)" 1 "$(finding own)"
ktap_check "container: its root cannot read namespace A's table" \
	grep -q "Permission denied" <<<"$(finding host)"

other_reads()
{
	local out

	# shellcheck disable=SC2016 # expanded by the container's shell
	out=$(in_container "$OTHER" 'cat "/proc/$1/net/ip_conntrack" 2>&1 | head -n 1' sh "$CONTAINER")
	ktap_msg "user $OTHER's container: $out"
	grep -q "Permission denied" <<<"$out"
}
ktap_check "another user's container cannot read the container's table" other_reads
ktap_check "the host's root reads the container's table" \
	grep -q "$ECHO_LINE" "/proc/$CONTAINER/net/ip_conntrack"

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
