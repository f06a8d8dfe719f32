#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Module parameters (contract.rst, "Loading"): one per per-namespace sysctl, named after it
# without `ip_ct_` (keep_replied for ip_ct_icmp_keep_replied), setting the value that sysctl
# starts at in every namespace:
# - modinfo lists each with its type and a description ending in its default, and loading
#   without parameters starts every sysctl (initial namespace, a new namespace) and every
#   /sys/module/icmp_ct/parameters/ file at that default;
# - insmod with parameters: the sysctls of the initial namespace, of a namespace created
#   before loading and of one created after start at the given values, and a write in one
#   namespace changes neither the parameter nor the next namespace's start;
# - modprobe with the options of a modprobe.d file (modprobe -d, -C: a scratch module tree);
# - a value outside the sysctl's range, or not a number: the load fails with EINVAL, the log
#   has one icmp_ct line saying why, nothing stays loaded or registered.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

require_module
require_cmd modinfo modprobe depmod dmesg ping python3

# parameter:sysctl, for every per-namespace sysctl.
PARAMS="icmp_timeout:ip_ct_icmp_timeout icmpv6_timeout:ip_ct_icmpv6_timeout
udp_timeout:ip_ct_udp_timeout udp_timeout_stream:ip_ct_udp_timeout_stream
tcp_timeout_syn_sent:ip_ct_tcp_timeout_syn_sent tcp_timeout_syn_recv:ip_ct_tcp_timeout_syn_recv
tcp_timeout_established:ip_ct_tcp_timeout_established
tcp_timeout_fin_wait:ip_ct_tcp_timeout_fin_wait tcp_timeout_time_wait:ip_ct_tcp_timeout_time_wait
tcp_timeout_close:ip_ct_tcp_timeout_close
tcp_timeout_unacknowledged:ip_ct_tcp_timeout_unacknowledged
generic_timeout:ip_ct_generic_timeout tcp_loose:ip_ct_tcp_loose
keep_replied:ip_ct_icmp_keep_replied checksum:ip_ct_checksum drop_invalid:ip_ct_drop_invalid
drop_fragments:ip_ct_drop_fragments mark_mask:ip_ct_mark_mask log_invalid:ip_ct_log_invalid
max_per_source:ip_ct_max_per_source"
PARAM_DIR=/sys/module/icmp_ct/parameters

ktap_header
ktap_plan 25

reload_at_exit=0
if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
SCRATCH=$(mktemp -d) || ktap_bail_out "mktemp failed"
test_cleanup()
{
	module_is_loaded && rmmod icmp_ct
	rm -rf "$SCRATCH"
	[ "$reload_at_exit" = 1 ] && module_restore
}

# modinfo -p: "name:description (type)"; the description ends in "(default)".  A test build's
# race_window* parameters (make ICMP_CT_RACE_WINDOWS=1, the debug kernel's) are not the
# users' and not counted.
MODINFO=$(modinfo -p "$ICMP_CT_KO" | grep -v '^race_window') ||
	ktap_bail_out "modinfo -p $ICMP_CT_KO failed"
ktap_msg "$(grep -c . <<<"$MODINFO") parameters"

# default_of PARAM: the default that PARAM's description names.
default_of()
{
	sed -n "s/^$1:.*(\(-\?[0-9]\+\)) (u\?int)\$/\1/p" <<<"$MODINFO"
}

modinfo_complete()
{
	local pair bad=""

	for pair in $PARAMS; do
		[ -n "$(default_of "${pair%%:*}")" ] || bad+="${pair%%:*} "
	done
	[ "$(grep -c . <<<"$MODINFO")" = "$(wc -w <<<"$PARAMS")" ] || bad+="(count) "
	[ -z "$bad" ] || { ktap_msg "not listed as 'name:... (default) (int)': $bad"; return 1; }
}
ktap_check "modinfo lists every parameter with its type and default" modinfo_complete

# starts_at NS PARAM=VALUE...: each PARAM's sysctl in NS reads VALUE.
starts_at()
{
	local ns=$1 kv name sysctl want got bad=""

	shift
	for kv in "$@"; do
		name=${kv%%=*}
		want=${kv#*=}
		sysctl=$(tr ' ' '\n' <<<"$PARAMS" | sed -n "s/^$name://p")
		got=$(sysctl_get "$ns" "$sysctl" 2>&1)
		[ "$got" = "$want" ] || bad+="$sysctl=$got (want $want) "
	done
	[ -z "$bad" ] || { ktap_msg "${ns:-init}: $bad"; return 1; }
}

# defaults: PARAM=DEFAULT for every parameter.
defaults()
{
	local pair

	for pair in $PARAMS; do
		echo "${pair%%:*}=$(default_of "${pair%%:*}")"
	done
}

# param_files PARAM=VALUE...: /sys/module/icmp_ct/parameters/PARAM reads VALUE.
param_files()
{
	local kv got bad=""

	for kv in "$@"; do
		got=$(cat "$PARAM_DIR/${kv%%=*}" 2>&1)
		[ "$got" = "${kv#*=}" ] || bad+="${kv%%=*}=$got (want ${kv#*=}) "
	done
	[ -z "$bad" ] || { ktap_msg "$bad"; return 1; }
}

kmsg_mark
START_MARK=$KMSG_MARK
mapfile -t DEFAULTS < <(defaults)
ktap_check "insmod without parameters" module_load || ktap_msg "$MODULE_ERR"
ns_create NEW0 || ktap_bail_out "cannot create a namespace"
ktap_check "no parameters: the initial namespace starts at the defaults" starts_at "" "${DEFAULTS[@]}"
ktap_check "no parameters: a new namespace starts at the defaults" starts_at "$NEW0" "${DEFAULTS[@]}"
ktap_check "no parameters: $PARAM_DIR shows the defaults" param_files "${DEFAULTS[@]}"
ktap_check "rmmod after loading without parameters" module_unload || ktap_msg "$MODULE_ERR"

# With parameters. mark_mask is unsigned: 0xffffffff, which the signed sysctl reads as -1.
GIVEN=(keep_replied=1 icmp_timeout=45 tcp_timeout_established=7200 tcp_loose=0 checksum=0
	mark_mask=0xffffffff log_invalid=1)
EXPECT=(keep_replied=1 icmp_timeout=45 tcp_timeout_established=7200 tcp_loose=0 checksum=0
	mark_mask=-1 log_invalid=1 udp_timeout=30 drop_invalid=0)
ns_create PRE || ktap_bail_out "cannot create a namespace"
ktap_check "insmod ${GIVEN[*]}" insmod "$ICMP_CT_KO" "${GIVEN[@]}"
ns_create POST || ktap_bail_out "cannot create a namespace"
ktap_check "the initial namespace starts at the parameters" starts_at "" "${EXPECT[@]}"
ktap_check "a namespace created before loading starts at them" starts_at "$PRE" "${EXPECT[@]}"
ktap_check "a namespace created after loading starts at them" starts_at "$POST" "${EXPECT[@]}"
ktap_check "$PARAM_DIR shows them" param_files keep_replied=1 icmp_timeout=45 \
	mark_mask=4294967295 udp_timeout=30

# keep_replied=1 is in force: a loopback ping's entry outlives its reply.
kept()
{
	ping_ok "$POST" 127.0.0.1 1 &&
		ns_exec "$POST" grep -q "^icmp .* type=8 .* type=0 " "$ICMP_CT_PROC"
}
ktap_check "keep_replied=1: a replied echo entry stays listed" kept

sysctl_set "$POST" ip_ct_icmp_keep_replied 0 || ktap_msg "$SYSCTL_ERR"
ns_create LATER || ktap_bail_out "cannot create a namespace"
ktap_check "a write in one namespace leaves the next one's start alone" \
	starts_at "$LATER" keep_replied=1
ktap_check "... and the parameter" param_files keep_replied=1
ktap_check "rmmod after loading with parameters" module_unload || ktap_msg "$MODULE_ERR"

# modprobe with options from a modprobe.d file, in a scratch module tree.
release=$(uname -r)
mkdir -p "$SCRATCH/lib/modules/$release/extra" "$SCRATCH/modprobe.d"
cp "$ICMP_CT_KO" "$SCRATCH/lib/modules/$release/extra/"
echo "options icmp_ct keep_replied=1 udp_timeout=77" >"$SCRATCH/modprobe.d/icmp_ct.conf"
depmod -b "$SCRATCH" "$release" 2>/dev/null
ktap_check "modprobe icmp_ct (options keep_replied=1 udp_timeout=77 in modprobe.d)" \
	modprobe -d "$SCRATCH" -C "$SCRATCH/modprobe.d" icmp_ct
ktap_check "modprobe: a new namespace starts at the options" \
	starts_at "$LATER" keep_replied=1 udp_timeout=77
module_is_loaded && rmmod icmp_ct

# refused PARAM=VALUE LINE-RE: insmod with it fails with EINVAL, logging one icmp_ct line that
# matches LINE-RE, and leaves no module, file or sysctl behind.
refused()
{
	local arg=$1 re=$2 err lines

	kmsg_mark
	# finit_module directly: insmod does not tell EINVAL apart from other errors.
	err=$(python3 -c '
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
ret = libc.syscall(313, fd, sys.argv[2].encode(), 0)  # finit_module, x86_64
print("ok" if ret == 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
' "$ICMP_CT_KO" "$arg")
	lines=$(kmsg_new | grep "icmp_ct: ")
	ktap_msg "$arg: $err; ${lines:-(no icmp_ct log line)}"
	[ "$err" = EINVAL ] && [ "$(grep -c . <<<"$lines")" = 1 ] && grep -qE "$re" <<<"$lines" &&
		! module_is_loaded && module_files_absent - && module_files_absent "$LATER"
}
ktap_check "keep_replied=2 refused" refused keep_replied=2 \
	"parameter keep_replied=2 out of range 0\.\.1, not loaded"
ktap_check "icmp_timeout=0 refused" refused icmp_timeout=0 \
	"parameter icmp_timeout=0 out of range 1\.\.2147483, not loaded"
ktap_check "tcp_timeout_close=2147484 refused" refused tcp_timeout_close=2147484 \
	"parameter tcp_timeout_close=2147484 out of range 1\.\.2147483, not loaded"
ktap_check "tcp_loose=-1 refused" refused tcp_loose=-1 \
	"parameter tcp_loose=-1 out of range 0\.\.1, not loaded"
ktap_check "keep_replied=yes (not a number) refused" refused keep_replied=yes \
	"invalid for parameter .keep_replied"

ktap_check "after the refusals, insmod with good parameters still works" \
	insmod "$ICMP_CT_KO" keep_replied=1
ktap_check "final rmmod" module_unload || ktap_msg "$MODULE_ERR"

KMSG_MARK=$START_MARK
kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
