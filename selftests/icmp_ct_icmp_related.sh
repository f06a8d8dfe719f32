#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Port of the kernel's tools/testing/selftests/net/netfilter/conntrack_icmp_related.sh to
# icmp_ct: the ICMP and ICMPv6 errors about tracked echo requests (fragmentation needed,
# packet too big, redirect, nd-redirect) must be RELATED.
#
#   client1 --- router1 --- router2 --- client2
#     192.168.1.0/24  192.168.3.0/24  192.168.2.0/24 (MTU 1280)
#     dead:1::/64     dead:3::/64     dead:2::/64
#
# Same topology, traffic and counters as the original, IPv4 and IPv6.  In place of
# "ct state X" the rules match icmp_ct's mark: ip_ct_mark_mask = 0xf in every
# namespace, so that "meta mark & 0xf" is NEW 1, ESTABLISHED 2, RELATED 3, INVALID 4,
# UNTRACKED 5 (written at PRE_ROUTING/LOCAL_OUT priority -99, read here by filter chains at
# priority 0; veth clears the mark when a packet changes namespace).  No ruleset has a ct
# expression; nf_conntrack is loaded (by nft, via nf_nat) only for router1's masquerade, which
# is what makes the errors router2 sends come back to router1's outside address and be
# translated (priority -100) before icmp_ct classifies them.
#
# The IPv6 redirect (nd-redirect, type 137) is RELATED as in the original: router1 sends it from
# its link-local address with hop limit 255 and the redirected packet in the first option,
# nf_conntrack's conditions, which icmp_ct applies too.  A rule for UNTRACKED redirects
# must count nothing.
#
# Also checked: icmp_ct's per-type counters (/proc/net/stat/icmp_ct_types) where they
# witness the same packets.  The end of the output is a table of every ported counter with
# the value the original expects.  See nf_conntrack_icmp_related_baseline.sh for the
# original itself.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

MASK=0xf
M_NEW=1
M_EST=2
M_REL=3
M_UNTRACKED=5
TYPES=/proc/net/stat/icmp_ct_types

require_module
require_cmd ip nft ping sysctl dmesg

ktap_header
ktap_plan 31

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
kmsg_mark

ns_create CLIENT1 CLIENT2 ROUTER1 ROUTER2 || ktap_bail_out "cannot create namespaces"
ALL_NS=("$CLIENT1" "$CLIENT2" "$ROUTER1" "$ROUTER2")
declare -A NAME=([$CLIENT1]=client1 [$CLIENT2]=client2 [$ROUTER1]=router1 [$ROUTER2]=router2)

for ns in "${ALL_NS[@]}"; do
	sysctl_set "$ns" ip_ct_mark_mask $((MASK)) ||
		ktap_bail_out "${NAME[$ns]}: ip_ct_mark_mask: $SYSCTL_ERR"
done

# Links, addresses and routes of the original.
DEV=veth0
# v6_addr NS DEV ADDR/LEN: an IPv6 address without duplicate address detection.
v6_addr()
{
	ip -n "$1" addr add "$3" dev "$2" nodad
}
{
	veth_pair "$CLIENT1" $DEV 192.168.1.2/24 "$ROUTER1" eth1 192.168.1.1/24 &&
		veth_pair "$CLIENT2" $DEV 192.168.2.2/24 "$ROUTER2" eth1 192.168.2.1/24 &&
		veth_pair "$ROUTER1" $DEV 192.168.3.1/24 "$ROUTER2" eth2 192.168.3.10/24 &&
		v6_addr "$CLIENT1" $DEV dead:1::2/64 && v6_addr "$CLIENT2" $DEV dead:2::2/64 &&
		v6_addr "$ROUTER1" eth1 dead:1::1/64 && v6_addr "$ROUTER1" $DEV dead:3::1/64 &&
		v6_addr "$ROUTER2" eth1 dead:2::1/64 && v6_addr "$ROUTER2" eth2 dead:3::10/64 &&
		ip -n "$ROUTER2" link set eth1 mtu 1280 &&
		ip -n "$CLIENT2" link set $DEV mtu 1280 &&
		ip -n "$CLIENT1" route add default via 192.168.1.1 &&
		ip -n "$CLIENT1" -6 route add default via dead:1::1 &&
		ip -n "$CLIENT2" route add default via 192.168.2.1 &&
		ip -n "$CLIENT2" -6 route add default via dead:2::1 &&
		ip -n "$ROUTER1" route add default via 192.168.3.10 &&
		ip -n "$ROUTER1" -6 route add default via dead:3::10 &&
		ip -n "$ROUTER2" route add default via 192.168.3.1 &&
		ip -n "$ROUTER2" -6 route add default via dead:3::1 &&
		ns_exec "$ROUTER1" sysctl -q net.ipv4.conf.all.forwarding=1 \
			net.ipv6.conf.all.forwarding=1 &&
		ns_exec "$ROUTER2" sysctl -q net.ipv4.conf.all.forwarding=1 \
			net.ipv6.conf.all.forwarding=1
} || ktap_bail_out "cannot set up the topology"

# The original's rulesets, "ct state X" replaced by icmp_ct's mark.
ST="meta mark & $MASK"
for ns in "$ROUTER1" "$ROUTER2"; do
	ns_exec "$ns" nft -f - <<-EOF || ktap_bail_out "${NAME[$ns]}: cannot load the filter table"
		table inet filter {
			counter unknown { }
			counter related { }
			chain forward {
				type filter hook forward priority 0; policy accept;
				meta l4proto icmpv6 icmpv6 type "packet-too-big" $ST == $M_REL counter name "related" accept
				meta l4proto icmp icmp type "destination-unreachable" $ST == $M_REL counter name "related" accept
				meta l4proto { icmp, icmpv6 } $ST { $M_NEW, $M_EST } accept
				counter name "unknown" drop
			}
		}
	EOF
done

ns_exec "$CLIENT1" nft -f - <<-EOF || ktap_bail_out "client1: cannot load the filter table"
	table inet filter {
		counter unknown { }
		counter related { }
		counter redir4 { }
		counter redir6 { }
		counter redir6_untracked { }
		chain input {
			type filter hook input priority 0; policy accept;

			icmp type "redirect" $ST == $M_REL counter name "redir4" accept
			icmpv6 type "nd-redirect" $ST == $M_REL counter name "redir6" accept
			icmpv6 type "nd-redirect" $ST == $M_UNTRACKED counter name "redir6_untracked" accept

			meta l4proto { icmp, icmpv6 } $ST { $M_EST, $M_UNTRACKED } accept
			meta l4proto { icmp, icmpv6 } $ST == $M_REL counter name "related" accept

			counter name "unknown" drop
		}
	}
EOF

ns_exec "$CLIENT2" nft -f - <<-EOF || ktap_bail_out "client2: cannot load the filter table"
	table inet filter {
		counter unknown { }
		counter new { }
		counter established { }

		chain input {
			type filter hook input priority 0; policy accept;
			meta l4proto { icmp, icmpv6 } $ST { $M_EST, $M_UNTRACKED } accept

			meta l4proto { icmp, icmpv6 } $ST == $M_NEW counter name "new" accept
			meta l4proto { icmp, icmpv6 } $ST == $M_EST counter name "established" accept
			counter name "unknown" drop
		}
		chain output {
			type filter hook output priority 0; policy accept;
			meta l4proto { icmp, icmpv6 } $ST { $M_EST, $M_UNTRACKED } accept

			meta l4proto { icmp, icmpv6 } $ST == $M_NEW counter name "new"
			meta l4proto { icmp, icmpv6 } $ST == $M_EST counter name "established"
			counter name "unknown" drop
		}
	}
EOF

# As in the original: router1 masquerades towards router2, so router2's ICMP errors go to
# 192.168.3.1 and nf_nat must send them on to client1.  This is the only nf_conntrack user.
nat_loaded()
{
	ns_exec "$ROUTER1" nft -f - <<-EOF
		table ip nat {
			chain postrouting {
				type nat hook postrouting priority 0; policy accept;
				ip protocol icmp oifname "veth0" counter masquerade
			}
		}
		table ip6 nat {
			chain postrouting {
				type nat hook postrouting priority 0; policy accept;
				ip6 nexthdr icmpv6 oifname "veth0" counter masquerade
			}
		}
	EOF
}
ktap_check "router1: nat table with masquerade loaded (nf_conntrack, nf_nat, nft_masq)" nat_loaded ||
	ktap_bail_out "the port needs router1's masquerade: modprobe nft_masq?"

no_ct_expression()
{
	local ns bad=0

	for ns in "${ALL_NS[@]}"; do
		if ns_exec "$ns" nft list ruleset | grep -E '(^|[[:space:]])ct[[:space:]]'; then
			ktap_msg "${NAME[$ns]} has a ct expression"
			bad=1
		fi
	done
	return "$bad"
}
ktap_check "no ruleset uses a ct expression" no_ct_expression

##############################################################################
# Counters

# "name|ns|port value|original's expectation|note" for the final table.
TABLE=()

# counter_get NS NAME: "packets P bytes B" of the named counter.
counter_get()
{
	ns_exec "$1" nft list counter inet filter "$2" 2>&1 |
		grep -o 'packets [0-9]* bytes [0-9]*' || echo "(no counter $2)"
}

# check_counter NS NAME EXPECT ORIGINAL [NOTE]: subtest "counter NAME in NS is EXPECT";
# ORIGINAL is what the original expects at the same point (goes into the table).
check_counter()
{
	local ns=$1 name=$2 expect=$3 orig=$4 note=${5:-} val

	val=$(counter_get "$ns" "$name")
	TABLE+=("$name|${NAME[$ns]}|$val|$orig|$note")
	ktap_expect_eq "${NAME[$ns]}: counter $name is '$expect'${note:+ ($note)}" "$expect" "$val"
}

# types_get NS TYPE [FAMILY]: "new established related invalid" of an ICMP type (family
# ipv4 unless FAMILY is ipv6) in NS.
# shellcheck disable=SC2016 # awk program
types_get()
{
	ns_exec "$1" awk -v t="$2" -v f="${3:-ipv4}" '$1 == f && $2 == t { v = $4 " " $5 " " $6 " " $7 }
		END { print (v == "" ? "0 0 0 0" : v) }' "$TYPES" 2>&1
}

# check_types NS TYPE TYPENAME EXPECT WITNESS [FAMILY]
check_types()
{
	local ns=$1 type=$2 tname=$3 expect=$4 witness=$5 family=${6:-ipv4} val

	val=$(types_get "$ns" "$type" "$family")
	tname="$family $tname"
	TABLE+=("$TYPES $tname (new est rel inv)|${NAME[$ns]}|$val|-|witness of $witness")
	ktap_expect_eq "${NAME[$ns]}: $TYPES $tname is new/est/rel/inv '$expect'" "$expect" "$val"
}

# snmp_get NS NAME: an Icmp counter of /proc/net/snmp (e.g. OutRedirects) in NS.
# shellcheck disable=SC2016 # awk program
snmp_get()
{
	ns_exec "$1" awk -v n="$2" '$1 == "Icmp:" && !h { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next }
		$1 == "Icmp:" && h { print $c[n]; exit }' /proc/net/snmp
}

##############################################################################
# 1. Connectivity: a 1000-byte echo from client1 to client2 (fits the 1280 MTU).

ping_1000()
{
	ns_exec "$CLIENT1" ping -c 1 -s 1000 -q -M "do" 192.168.2.2 >/dev/null
}
ktap_check "ping -s 1000 -M do client1 -> client2 (routing, masquerade)" ping_1000 ||
	ktap_bail_out "netns ip routing/connectivity broken"
ping6_1000()
{
	ns_exec "$CLIENT1" ping -c 1 -s 1000 -q dead:2::2 >/dev/null
}
ktap_check "ping -s 1000 client1 -> client2 dead:2::2 (IPv6 routing, masquerade)" ping6_1000 ||
	ktap_bail_out "netns ipv6 routing/connectivity broken"

for ns in "$CLIENT1" "$CLIENT2" "$ROUTER1" "$ROUTER2"; do
	check_counter "$ns" unknown "packets 0 bytes 0" "packets 0 bytes 0"
done
for ns in "$ROUTER1" "$ROUTER2" "$CLIENT1"; do
	check_counter "$ns" related "packets 0 bytes 0" "packets 0 bytes 0"
done
# 2 packets 2076 bytes = 1028 (IPv4: 1000 + 8 ICMP + 20 IP) + 1048 (IPv6: 1000 + 8 + 40).
check_counter "$CLIENT2" new "packets 2 bytes 2076" "packets 2 bytes 2076" \
	"1028 IPv4 + 1048 IPv6"
check_types "$CLIENT2" 8 echo-request "1 0 0 0" "client2's 'new'"
check_types "$CLIENT2" 128 echo-request "1 0 0 0" "client2's 'new'" ipv6

##############################################################################
# 2. Path MTU: 1300 bytes with DF set do not fit router2's 1280-byte link.  router2 sends
# "fragmentation needed" to 192.168.3.1 (masqueraded source); router1 translates it back to
# client1 and must see it RELATED, and so must client1.  router2 generated it itself, so its
# forward chain never sees it.

ping_1300_fails()
{
	! ns_exec "$CLIENT1" ping -W 0.5 -q -c 1 -s 1300 -M "do" 192.168.2.2 >/dev/null
}
ktap_check "ping -s 1300 -M do client1 -> client2 fails (fragmentation needed)" ping_1300_fails

check_counter "$ROUTER2" related "packets 0 bytes 0" "packets 0 bytes 0"
# 576 = the largest ICMPv4 error: 20 IP + 8 ICMP + 548 bytes of the 1328-byte request.
for ns in "$ROUTER1" "$CLIENT1"; do
	check_counter "$ns" related "packets 1 bytes 576" "packets 1 bytes 576"
done
for ns in "$ROUTER1" "$CLIENT1"; do
	check_types "$ns" 3 destination-unreachable "0 0 1 0" "${NAME[$ns]}'s 'related'"
done

# The same with ping6: router2 sends "packet too big" (at most 1280 bytes) to dead:3::1;
# router1's nf_nat sends it on to client1.  2 packets 1856 bytes = 576 + 1280.
ping6_1300_fails()
{
	! ns_exec "$CLIENT1" ping -W 0.5 -q -c 1 -s 1300 dead:2::2 >/dev/null
}
ktap_check "ping -s 1300 client1 -> client2 dead:2::2 fails (packet too big)" ping6_1300_fails
for ns in "$ROUTER1" "$CLIENT1"; do
	check_counter "$ns" related "packets 2 bytes 1856" "packets 2 bytes 1856" \
		"1856 = 576 IPv4 + 1280 IPv6"
done
for ns in "$ROUTER1" "$CLIENT1"; do
	check_types "$ns" 2 packet-too-big "0 0 1 0" "${NAME[$ns]}'s 'related'" ipv6
done

##############################################################################
# 3. Redirect: a route to 192.168.1.42 via router1, on client1's own link, makes router1 send
# ICMP redirects to client1, which must be RELATED to client1's echo request.
#
# How many reach client1 (the original expects 1): router1 sends a redirect per request it
# forwards back out of eth1 (2 requests, 0.5 s apart, its rate limit allows both; client1
# cannot apply the redirect, 192.168.1.42 never answers ARP).  But the first redirect is
# generated before the request reaches router1's POSTROUTING, so the request's conntrack has
# no NAT binding yet, and nf_nat drops a redirect about a connection whose NAT is not done
# (nf_nat_icmp_reply_translation).  The second request's connection has its (null) binding:
# that redirect gets through.  icmp_ct plays no part in this (it only accepts); at client1 the
# one redirect is about the unreplied entry the two requests share, so it is RELATED (and
# destroys that entry, see below).

redirects_out_before=$(snmp_get "$ROUTER1" OutRedirects)
redirects_in_before=$(snmp_get "$CLIENT1" InRedirects)
ns_exec "$CLIENT1" ip route add 192.168.1.42 via 192.168.1.1
ns_exec "$CLIENT1" ping -W 1 -q -i 0.5 -c 2 192.168.1.42 >/dev/null

# 112 = 20 IP + 8 ICMP + 84 (the embedded 84-byte echo request: 20 + 8 + 56).
check_counter "$CLIENT1" redir4 "packets 1 bytes 112" "packets 1 bytes 112"
check_types "$CLIENT1" 5 redirect "0 0 1 0" "client1's 'redir4'"
ktap_msg "redirects sent by router1: $(($(snmp_get "$ROUTER1" OutRedirects) - redirects_out_before))," \
	"received by client1: $(($(snmp_get "$CLIENT1" InRedirects) - redirects_in_before))"

# IPv6: router1 redirects client1 (nd-redirect, 192 = 40 IPv6 + 40 redirect header and
# addresses + 112 of the redirected packet in a redirected-header option), RELATED to
# client1's echo request.
ns_exec "$CLIENT1" ip route add dead:1::42 via dead:1::1
ns_exec "$CLIENT1" ping -W 1 -q -c 1 dead:1::42 >/dev/null
check_counter "$CLIENT1" redir6 "packets 1 bytes 192" "packets 1 bytes 192"
check_counter "$CLIENT1" redir6_untracked "packets 0 bytes 0" "-" \
	"no redirect seen UNTRACKED"
check_types "$CLIENT1" 137 redirect "0 0 1 0" "client1's 'redir6'" ipv6

kmsg_clean "no BUG/WARNING in the kernel log"

# Not in the original, not checked: router1 cannot resolve 192.168.1.42 and, about 3 s after
# the first request, sends "host unreachable" to client1 for each request it queued.  The
# redirect has already destroyed client1's (and router1's) unreplied entry, so icmp_ct calls
# these INVALID (mark 4: client1's "unknown" counter), where nf_conntrack, whose entry lives
# on, calls them RELATED.  Shown for the record.
sleep 4
ktap_msg "4 s later, client1: related $(counter_get "$CLIENT1" related)," \
	"unknown $(counter_get "$CLIENT1" unknown)," \
	"destination-unreachable new/est/rel/inv $(types_get "$CLIENT1" 3);" \
	"router1: unknown $(counter_get "$ROUTER1" unknown)," \
	"destination-unreachable $(types_get "$ROUTER1" 3), redirect $(types_get "$ROUTER1" 5)"

##############################################################################
# Diagnostics: icmp_ct's view of each namespace.

for ns in "${ALL_NS[@]}"; do
	ktap_msg "${NAME[$ns]} $TYPES:" "$(ns_exec "$ns" cat "$TYPES" 2>&1)"
	ktap_msg "${NAME[$ns]} $ICMP_CT_PROC:" "$(ns_exec "$ns" cat "$ICMP_CT_PROC" 2>&1)"
	ktap_msg "${NAME[$ns]} $ICMP_CT_STAT: $(stat_dump "$ns" 2>&1 | awk '$2 != 0 { printf "%s=%s ", $1, $2 }')"
done

# The table: each ported counter next to the original's expectation.
{
	echo "counter|netns|icmp_ct port|original expects|note"
	echo "-------|-----|------------|----------------|----"
	printf '%s\n' "${TABLE[@]}"
} | awk -F'|' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
		if (NF > nf) nf = NF }
	END { for (r = 1; r <= NR; r++) { line = "#"
		for (i = 1; i <= nf; i++) line = line sprintf(" %-*s |", w[i], c[r, i])
		sub(/ *\|$/, "", line); print line } }'

ktap_finished
