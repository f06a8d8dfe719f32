#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Traffic for icmp_ct_stress.sh: one kind of flood from many sources, until a deadline.

  stress_traffic.py icmp  --dst D --src A1,A2,... --seconds S   echo requests, random ids
  stress_traffic.py udp   --dst D --src ...       --seconds S   datagrams, random ports
  stress_traffic.py tcp   --dst D --src ...       --seconds S   handshakes to D:80 (and to
                                                               closed ports: SYN, RST)
  stress_traffic.py burst --dst D --src A --count N --seconds S  N echo requests with new
                                                               ids at once, then a pause
  stress_traffic.py serve --dst D --seconds S                  TCP server on D:80

Addresses with a ":" are IPv6. Every source must be an address of this namespace. Prints
"KIND sent N failed M" at the end; sends that fail (e.g. while the table is full, or a
rule drops them) are counted, not fatal.
"""

import argparse
import errno
import random
import select
import socket
import struct
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo(v6, ident, seq):
    msg = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq) + b"stress!!"
    if v6:
        return msg  # the kernel computes the ICMPv6 checksum
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


class Counter:
    sent = 0
    failed = 0


def icmp_sockets(srcs):
    socks = []
    for src in srcs:
        proto = socket.IPPROTO_ICMPV6 if family(src) == socket.AF_INET6 else socket.IPPROTO_ICMP
        s = socket.socket(family(src), socket.SOCK_RAW, proto)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
    return socks


def send_echo(sock, dst, ident, seq, c):
    try:
        sock.sendto(echo(sock.family == socket.AF_INET6, ident, seq), (dst, 0))
        c.sent += 1
    except OSError:
        c.failed += 1


def run_icmp(a, c, deadline):
    socks = icmp_sockets(a.src)
    seq = 0
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        send_echo(random.choice(socks), a.dst, random.randrange(65536), seq, c)
        for s in socks[:4]:  # drain the replies now and then
            try:
                while s.recv(2048):
                    pass
            except OSError:
                pass


def run_udp(a, c, deadline):
    while time.monotonic() < deadline:
        src = random.choice(a.src)
        with socket.socket(family(src), socket.SOCK_DGRAM) as s:
            try:
                s.bind((src, 0))
                s.sendto(b"stress", (a.dst, random.randrange(1000, 1100)))
                c.sent += 1
            except OSError:
                c.failed += 1


def run_tcp(a, c, deadline):
    while time.monotonic() < deadline:
        src = random.choice(a.src)
        port = 80 if random.random() < 0.7 else random.randrange(2000, 2100)
        s = socket.socket(family(src), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            s.bind((src, 0))
            s.setblocking(False)
            err = s.connect_ex((a.dst, port))
            if err in (errno.EINPROGRESS, 0):
                select.select([], [s], [], 1.0)
            c.sent += 1
        except OSError:
            c.failed += 1
        finally:
            s.close()  # linger 0: a RST if connected, else the SYN is left behind


def run_burst(a, c, deadline):
    sock = icmp_sockets(a.src[:1])[0]
    base = 0
    while True:  # at least one burst
        for i in range(a.count):
            send_echo(sock, a.dst, (base + i) & 0xFFFF, 1, c)
        base += a.count
        pause = time.monotonic() + a.pause
        while time.monotonic() < min(pause, deadline):
            time.sleep(0.5)
        if time.monotonic() >= deadline:
            break


def run_serve(a, c, deadline):
    listener = socket.socket(family(a.dst), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((a.dst, 80))
    listener.listen(1024)
    listener.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
            conn.close()
            c.sent += 1
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("kind", choices=("icmp", "udp", "tcp", "burst", "serve"))
    p.add_argument("--dst", required=True)
    p.add_argument("--src", default="", help="comma-separated source addresses")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--pause", type=float, default=10.0)
    a = p.parse_args()
    a.src = [s for s in a.src.split(",") if s]
    if a.kind != "serve" and not a.src:
        p.error("--src is required")
    c = Counter()
    deadline = time.monotonic() + a.seconds
    globals()["run_" + a.kind](a, c, deadline)
    print("%s sent %d failed %d" % (a.kind, c.sent, c.failed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
