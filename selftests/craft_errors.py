#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Hand-made IPv4 packets for the icmp_ct selftests, built with scapy.

The packet is sent through a raw IPPROTO_RAW socket (IP_HDRINCL) of the namespace this runs
in, so it passes that namespace's routing and LOCAL_OUT/POST_ROUTING hooks like any locally
generated packet (scapy's own L3 sockets would bypass the IP stack).

  craft_errors.py error --src S --dst D --type T --code C \\
          --inner-src A --inner-dst B --inner-proto udp|tcp|icmp|N \\
          [--sport P --dport Q] [--inner-type T --inner-code C --inner-id I] [--mtu M]
      an ICMP error from S to D about the packet A -> B (its IP header and 8 bytes)
  craft_errors.py tcp --src S --dst D --sport P --dport Q --flags FLAGS
          [--seq N --ack N --window N --wscale N --len N] [--link DEV --lladdr MAC]
      one TCP segment (FLAGS as scapy spells them: S, A, R, FA, PA, ...), with a window
      scale option and N bytes of payload if asked; with --link, sent as an Ethernet frame
      to MAC through a packet socket on DEV (AF_PACKET: no hook of the sender sees it)

  craft_errors.py serve
      prints "ready", then reads one command (the arguments above) per line from stdin and
      answers each with one line: scapy takes long to start in an emulated guest

Prints "sent LEN" on success ("error MESSAGE" in serve mode on failure).
"""

import argparse
import contextlib
import io
import shlex
import socket
import sys

try:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
except ImportError as exc:
    # The first line is what the tests report as the reason to skip.
    print("error python3-scapy is not available: %s" % exc, flush=True)
    sys.exit(4)

PROTOS = {"icmp": 1, "tcp": 6, "udp": 17}


def inner_packet(a):
    proto = PROTOS.get(a.inner_proto)
    if proto is None:
        proto = int(a.inner_proto)
    ip = IP(src=a.inner_src, dst=a.inner_dst, ttl=64, id=0x4242)
    if proto == 17:
        pkt = ip / UDP(sport=a.sport, dport=a.dport) / Raw(b"\0" * 16)
    elif proto == 6:
        pkt = ip / TCP(sport=a.sport, dport=a.dport, flags="S", seq=1000)
    elif proto == 1:
        pkt = ip / ICMP(type=a.inner_type, code=a.inner_code, id=a.inner_id, seq=1)
        if a.inner_type in (3, 4, 5, 11, 12):
            # An error about an error: give it an embedded header of its own.
            pkt = ip / ICMP(type=a.inner_type, code=a.inner_code) / \
                IP(src=a.inner_dst, dst=a.inner_src) / UDP(sport=a.dport, dport=a.sport)
    else:
        pkt = IP(src=a.inner_src, dst=a.inner_dst, proto=proto, ttl=64) / Raw(b"\0" * 16)
    # Only the IP header and the first 8 bytes of the payload travel in the error.
    raw = bytes(pkt)
    ihl = (raw[0] & 0x0f) * 4
    return raw[:ihl + 8]


def build(a):
    if a.cmd == "error":
        icmp = ICMP(type=a.type, code=a.code)
        if a.type == 3 and a.code == 4:
            icmp = ICMP(type=3, code=4, nexthopmtu=a.mtu)
        return IP(src=a.src, dst=a.dst, ttl=64) / icmp / Raw(inner_packet(a))
    options = [("WScale", a.wscale)] if a.wscale is not None else []
    segment = TCP(sport=a.sport, dport=a.dport, flags=a.flags, seq=a.seq, ack=a.ack,
                  window=a.window, options=options)
    return IP(src=a.src, dst=a.dst, ttl=64) / segment / Raw(b"x" * a.len)


def parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("error")
    e.add_argument("--src", required=True)
    e.add_argument("--dst", required=True)
    e.add_argument("--type", type=int, default=3)
    e.add_argument("--code", type=int, default=1)
    e.add_argument("--mtu", type=int, default=1280)
    e.add_argument("--inner-src", required=True)
    e.add_argument("--inner-dst", required=True)
    e.add_argument("--inner-proto", default="udp")
    e.add_argument("--sport", type=int, default=1025)
    e.add_argument("--dport", type=int, default=53)
    e.add_argument("--inner-type", type=int, default=8)
    e.add_argument("--inner-code", type=int, default=0)
    e.add_argument("--inner-id", type=int, default=4242)
    t = sub.add_parser("tcp")
    t.add_argument("--src", required=True)
    t.add_argument("--dst", required=True)
    t.add_argument("--sport", type=int, required=True)
    t.add_argument("--dport", type=int, required=True)
    t.add_argument("--flags", default="A")
    t.add_argument("--seq", type=int, default=12345)
    t.add_argument("--ack", type=int, default=54321)
    t.add_argument("--window", type=int, default=8192)
    t.add_argument("--wscale", type=int)
    t.add_argument("--len", type=int, default=0, help="payload bytes")
    t.add_argument("--link", metavar="DEV", help="send as a frame on DEV (AF_PACKET)")
    t.add_argument("--lladdr", metavar="MAC", help="destination MAC address for --link")
    sub.add_parser("serve")
    return p


def send(sock, a):
    data = bytes(build(a))
    if getattr(a, "link", None):
        if not a.lladdr:
            raise ValueError("--link needs --lladdr")
        with open("/sys/class/net/%s/address" % a.link) as f:
            own = f.read().strip()
        frame = bytes(Ether(dst=a.lladdr, src=own, type=0x0800)) + data
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as link:
            link.bind((a.link, 0))
            link.send(frame)
        return "sent %d" % len(data)
    sock.sendto(data, (a.dst, 0))
    return "sent %d" % len(data)


def serve(p, sock):
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            # argparse reports errors on stderr: keep the answer to one line.
            with contextlib.redirect_stderr(io.StringIO()):
                a = p.parse_args(shlex.split(line))
            if a.cmd == "serve":
                raise ValueError("nested serve")
            print(send(sock, a), flush=True)
        except (Exception, SystemExit) as exc:  # one bad line must not end the server
            print("error %s" % (exc or "bad arguments",), flush=True)
    return 0


def main():
    p = parser()
    a = p.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    if a.cmd == "serve":
        return serve(p, sock)
    print(send(sock, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
