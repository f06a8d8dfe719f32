#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the demo guest (see demo.sh): the module's view of a ping between two
# namespaces.
set -euo pipefail
ko=$1
a=demo-a-$$
b=demo-b-$$

show() {
	echo
	echo "\$ $*"
	"$@"
}

cleanup() {
	ip netns del "$a" 2>/dev/null || true
	ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT

insmod "$ko"
echo "\$ dmesg | grep icmp_ct"
dmesg | grep 'icmp_ct:'

ip netns add "$a"
ip netns add "$b"
ip link add veth0 netns "$a" type veth peer name veth0 netns "$b"
ip -n "$a" addr add 10.0.1.1/24 dev veth0
ip -n "$b" addr add 10.0.1.2/24 dev veth0
ip -n "$a" link set veth0 up
ip -n "$b" link set veth0 up

show ip netns exec "$a" ping -c 3 -i 0.2 10.0.1.2
show ip netns exec "$a" sysctl net.ipv4.netfilter.ip_ct_icmp_timeout
echo "# every entry was destroyed once its reply passed (the tutorial's behaviour):"
show ip netns exec "$a" cat /proc/net/ip_conntrack
show ip netns exec "$a" cat /proc/net/stat/icmp_ct

echo
echo "# B drops echo requests now: A's request stays [UNREPLIED] for ip_ct_icmp_timeout."
ip netns exec "$b" nft add table ip demo
ip netns exec "$b" nft add chain ip demo in '{ type filter hook input priority 0; }'
ip netns exec "$b" nft add rule ip demo in icmp type echo-request drop
show ip netns exec "$a" ping -c 1 -W 1 10.0.1.2 || true
show ip netns exec "$a" cat /proc/net/ip_conntrack
show ip netns exec "$a" cat /proc/net/stat/icmp_ct_types
cleanup
rmmod icmp_ct
