#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Send hand-made IPv4 ICMP and IPv6 ICMPv6 packets for the icmp_ct selftests.

Each packet is built here, IP header included, and sent through a raw IPv4 socket with
IP_HDRINCL (socket(AF_INET, SOCK_RAW, IPPROTO_RAW)), so it passes the sender's LOCAL_OUT and
POST_ROUTING hooks like any locally generated packet, and the receiver's PRE_ROUTING and
LOCAL_IN hooks.  (scapy's send() goes through a packet socket on Linux and would bypass the
sender's netfilter hooks; importing scapy also costs seconds in a TCG guest, per packet batch.
So this only uses the standard library.)

  craft.py --dst 10.0.1.2 --type 15 --id 77              information request
  craft.py --dst 10.0.1.1 --type 16 --id 77              the matching reply
  craft.py --dst 10.0.1.2 --type 8 --id 1 --count 300 --id-step 1   300 distinct ids
  craft.py --dst 10.0.1.1 --type 8 --bad-checksum        wrong ICMP checksum
  craft.py --dst 10.0.1.1 --type 8 --icmp-len 4          ICMP header cut to 4 bytes
  craft.py --dst 10.0.1.2 --udp 33434                     a UDP datagram (no ICMP)
  craft.py --dst 10.0.1.1 --type 3 --code 3 --embed-udp 10.0.1.1,4000,10.0.1.2,53
                                                          port unreachable about that flow

An IPv6 --dst sends ICMPv6 through a raw ICMPv6 socket instead: the kernel builds the IPv6
header and always computes the checksum (so --bad-checksum and --src are IPv4 only); --ttl
sets the hop limit.  --udp sends through a UDP socket bound to --sport, and --embed-udp
with IPv6 addresses embeds an IPv6 header (with --type 137: a redirect, the datagram in its
redirected-header option).

  craft.py --link veth0 --lladdr 02:..:01 --src ::ffff:10.7.0.2 --dst ::ffff:10.7.0.1 --udp 5000
                                                          IPv6 built here, sent as a frame

--link DEV builds the whole IPv6 packet here (--src required, checksums computed here) and
sends it in an Ethernet frame to --lladdr through a packet socket on DEV: it skips the
sender's netfilter hooks and routing, so it can carry what no IPv6 socket sends, such as
IPv4-mapped addresses (::ffff:a.b.c.d), which an IPv6 socket sends as IPv4.  --udp-socket
sends IPv4 --udp datagrams through a UDP socket bound to --src and --sport instead of a raw
socket (a socket can send to its own address and port and receive what it sent).
--port-step adds that much to --sport for each datagram (raw IPv4 --udp, --link).

  craft.py --dst 10.0.1.1 --ip-proto 6 --data 9c40...      --data as a TCP header (or any
                                                          protocol's payload), unchecked
  craft.py --dst 10.0.1.1 --ip-version 6                  an IPv4 header claiming version 6

--ip-proto sends the bytes of --data, unchanged, as the payload of protocol N (raw IPv4, or
--link: then no checksum is filled in either), to build malformed transport headers and
IPv6 extension header chains.  --ip-version writes N into the version field of the raw IPv4
header (the sender's LOCAL_OUT hook sees it; no receiver's IP stack accepts it).

The payload depends on the type: echo 8 bytes, timestamp 12 bytes (originate, receive,
transmit), information none, address mask 4 bytes, extended echo (RFC 8335) an extension
header plus an interface identification object naming ifindex --probe-ifindex (default 1,
"lo") with the L bit set, so that Linux answers it with code 0 when
net.ipv4.icmp_echo_enable_probe=1.

Exit status: 0 if every packet was sent, 1 if a send failed (e.g. EPERM: dropped by
netfilter on the way out), 2 on a usage error.  With --quiet-errors failed sends are only
counted, in the summary line "sent N failed M" on stderr (printed with --summary or on
failure).

  craft.py --serve    agent mode, see serve(): the same sends, one command line each.
"""

import argparse
import errno
import socket
import struct
import subprocess
import sys
import time


def checksum(data):
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def is_ipv6(address):
    return ":" in address


def embedded_udp(spec):
    """The body of an ICMP error about a UDP datagram "SRC,SPORT,DST,DPORT": its IPv4 or
    IPv6 header and its 8-byte UDP header (RFC 792, RFC 4443)."""
    src, sport, dst, dport = spec.split(",")
    udp = struct.pack("!HHHH", int(sport), int(dport), 8 + 8, 0)
    if is_ipv6(src):
        hdr = struct.pack("!IHBB16s16s", 6 << 28, 16, socket.IPPROTO_UDP, 64,
                          socket.inet_pton(socket.AF_INET6, src),
                          socket.inet_pton(socket.AF_INET6, dst))
        return hdr + udp
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 16, 0, 0, 64, socket.IPPROTO_UDP, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + udp


def default_payload(icmp_type, args):
    """Type-specific body after the 8-byte ICMP header."""
    if args.data is not None:
        return bytes.fromhex(args.data)
    if args.embed_udp is not None:
        packet = embedded_udp(args.embed_udp)
        if icmp_type != 137 or not is_ipv6(args.dst):
            return packet
        # An ICMPv6 redirect (RFC 4861 4.5): target and destination (both the datagram's
        # destination), then the datagram in a redirected-header option (type 4, length in
        # units of 8 bytes, 6 reserved bytes).
        dst = socket.inet_pton(socket.AF_INET6, args.embed_udp.split(",")[2])
        return dst + dst + struct.pack("!BB6x", 4, (8 + len(packet)) // 8) + packet
    if is_ipv6(args.dst):
        if icmp_type in (139, 140):
            # Node information (RFC 4620): nonce, then the subject (an IPv6 address, code 0).
            return b"nonce_ct" + b"\0" * 16
        if icmp_type in (135, 136):
            return b"\0" * 16  # the target address
        return b"icmp_ct!"
    if icmp_type in (8, 0):
        return b"icmp_ct!"
    if icmp_type in (13, 14):
        now = int(time.time() % 86400 * 1000)
        recv = now if icmp_type == 14 else 0
        return struct.pack("!III", now, recv, recv)
    if icmp_type in (15, 16):
        return b""
    if icmp_type in (17, 18):
        return socket.inet_aton("255.255.255.0" if icmp_type == 18 else "0.0.0.0")
    if icmp_type in (42, 43):
        # RFC 8335 / RFC 4884: extension header (version 2, reserved, checksum), then one
        # object: length 8, class-num 3 (interface identification), c-type 2 (by ifindex).
        obj = struct.pack("!HBBI", 8, 3, 2, args.probe_ifindex)
        hdr = struct.pack("!BBH", 0x20, 0, 0)
        csum = checksum(hdr + obj)
        return struct.pack("!BBH", 0x20, 0, csum) + obj
    return b"\0" * 8


def icmp_message(icmp_type, code, ident, seq, args):
    """The ICMP message (header and body), checksummed, possibly spoiled or cut."""
    if icmp_type in (42, 43):
        # Extended echo: 16-bit id, 8-bit sequence, 7 reserved bits and the L bit (request:
        # "probe an interface of this node"; reply: state bits, left 0 here).
        rest = struct.pack("!HBB", ident, seq & 0xFF, 1 if icmp_type == 42 else 0)
    else:
        rest = struct.pack("!HH", ident, seq & 0xFFFF)
    body = default_payload(icmp_type, args)
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest + body
    csum = checksum(msg)
    if args.bad_checksum:
        csum ^= 0x5A5A
    msg = msg[:2] + struct.pack("!H", csum) + msg[4:]
    if args.icmp_len is not None:
        msg = msg[: args.icmp_len]
    return msg


def udp_datagram(sport, dport):
    """A UDP header and 8 bytes of data, without checksum (0: none, valid for IPv4)."""
    return struct.pack("!HHHH", sport, dport, 16, 0) + b"icmp_ct!"


def ip_packet(src, dst, payload, ttl, proto=socket.IPPROTO_ICMP, version=4):
    """IPv4 header (the kernel fills in total length, id and header checksum) + payload."""
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        (version & 0xF) << 4 | 5,
        0,
        20 + len(payload),
        0,
        0,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return hdr + payload


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--src", default="0.0.0.0", help="source address (default: the route's)")
    p.add_argument("--dst", required=True)
    p.add_argument("--type", type=int, default=8, dest="icmp_type")
    p.add_argument("--code", type=int, default=0)
    p.add_argument("--id", type=int, default=0x4242, dest="ident")
    p.add_argument("--seq", type=int, default=1)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--id-step", type=int, default=0, help="add this to the id for each packet")
    p.add_argument("--interval", type=float, default=0.0, help="seconds between packets")
    p.add_argument("--bad-checksum", action="store_true")
    p.add_argument("--icmp-len", type=int, help="cut the ICMP message to this many bytes")
    p.add_argument("--data", help="body after the ICMP header, in hex")
    p.add_argument("--embed-udp", metavar="SRC,SPORT,DST,DPORT",
                   help="body of an error: the IPv4 and UDP headers of that datagram")
    p.add_argument("--udp", type=int, metavar="DPORT",
                   help="send UDP datagrams to this port instead of ICMP")
    p.add_argument("--sport", type=int, default=40000, help="UDP source port (--udp)")
    p.add_argument("--port-step", type=int, default=0,
                   help="add this to --sport for each datagram (IPv4 --udp, --link)")
    p.add_argument("--udp-socket", action="store_true",
                   help="IPv4 --udp through a UDP socket bound to --src and --sport")
    p.add_argument("--link", metavar="DEV",
                   help="IPv6 built here, sent as an Ethernet frame on DEV (packet socket)")
    p.add_argument("--lladdr", metavar="MAC", help="destination MAC address for --link")
    p.add_argument("--probe-ifindex", type=int, default=1)
    p.add_argument("--ttl", type=int, default=64)
    p.add_argument("--ip-proto", type=int, help="send --data as this protocol's payload")
    p.add_argument("--ip-version", type=int, default=4, help="raw IPv4 header's version field")
    p.add_argument("--quiet-errors", action="store_true", help="failed sends are not fatal")
    p.add_argument("--summary", action="store_true")
    return p


def ipv6_socket(args):
    """The socket for an IPv6 --dst: raw ICMPv6, or UDP bound to --sport."""
    if args.udp is not None:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", args.sport))
    else:
        if args.bad_checksum or args.src != "0.0.0.0":
            raise ValueError("--bad-checksum and --src are IPv4 only")
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, args.ttl)
    return sock


def send_ipv6(args):
    """send() for an IPv6 --dst."""
    sent = failed = 0
    last_err = None
    with ipv6_socket(args) as sock:
        for i in range(args.count):
            ident = (args.ident + i * args.id_step) & 0xFFFF
            if args.udp is not None:
                msg, port = b"icmp_ct!", args.udp
            else:
                msg, port = icmp_message(args.icmp_type, args.code, ident, args.seq + i, args), 0
            try:
                sock.sendto(msg, (args.dst, port))
                sent += 1
            except OSError as e:
                failed += 1
                last_err = e
            if args.interval and i + 1 < args.count:
                time.sleep(args.interval)
    return sent, failed, last_err


def ipv6_packet(src, dst, next_header, payload, hop_limit):
    """IPv6 header + payload."""
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def ipv6_checksummed(src, dst, next_header, msg, offset):
    """msg (ICMPv6 or UDP) with its checksum, over the IPv6 pseudo-header, at offset."""
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!IxxxB", len(msg), next_header))
    msg = msg[:offset] + b"\0\0" + msg[offset + 2:]
    csum = checksum(pseudo + msg)
    if next_header == socket.IPPROTO_UDP and csum == 0:
        csum = 0xFFFF  # 0 means "no checksum", which IPv6 forbids
    return msg[:offset] + struct.pack("!H", csum) + msg[offset + 2:]


def send_link(args):
    """send() for --link: the IPv6 packet built here, in an Ethernet frame on args.link."""
    if not (is_ipv6(args.dst) and is_ipv6(args.src)):
        raise ValueError("--link needs IPv6 --src and --dst")
    if args.lladdr is None:
        raise ValueError("--link needs --lladdr")
    if args.icmp_len is not None:
        raise ValueError("--icmp-len: not with --link")
    with open("/sys/class/net/%s/address" % args.link) as f:
        own = bytes.fromhex(f.read().strip().replace(":", ""))
    eth = bytes.fromhex(args.lladdr.replace(":", "")) + own + struct.pack("!H", 0x86DD)
    sent = failed = 0
    last_err = None
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((args.link, 0))
        for i in range(args.count):
            if args.ip_proto is not None:
                msg, nh, off = bytes.fromhex(args.data or ""), args.ip_proto, None
            elif args.udp is not None:
                sport = (args.sport + i * args.port_step) & 0xFFFF
                msg = struct.pack("!HHHH", sport, args.udp, 16, 0) + b"icmp_ct!"
                nh, off = socket.IPPROTO_UDP, 6
            else:
                ident = (args.ident + i * args.id_step) & 0xFFFF
                msg = icmp_message(args.icmp_type, args.code, ident, args.seq + i, args)
                nh, off = socket.IPPROTO_ICMPV6, 2
            if off is not None:
                msg = ipv6_checksummed(args.src, args.dst, nh, msg, off)
                if args.bad_checksum:
                    msg = msg[:off] + bytes([msg[off] ^ 0xFF]) + msg[off + 1:]
            try:
                sock.send(eth + ipv6_packet(args.src, args.dst, nh, msg, args.ttl))
                sent += 1
            except OSError as e:
                failed += 1
                last_err = e
            if args.interval and i + 1 < args.count:
                time.sleep(args.interval)
    return sent, failed, last_err


def send_udp_socket(args):
    """send() for --udp-socket: IPv4 datagrams from a UDP socket bound to --src, --sport."""
    if args.udp is None or is_ipv6(args.dst) or args.port_step:
        raise ValueError("--udp-socket: IPv4 --udp, one --sport")
    sent = failed = 0
    last_err = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.src, args.sport))
        for i in range(args.count):
            try:
                sock.sendto(b"icmp_ct!", (args.dst, args.udp))
                sent += 1
            except OSError as e:
                failed += 1
                last_err = e
            if args.interval and i + 1 < args.count:
                time.sleep(args.interval)
    return sent, failed, last_err


def send(args, sock):
    """Send what args describe; returns (sent, failed, last error or None)."""
    if not 0 <= args.icmp_type <= 255 or not 0 <= args.code <= 255:
        raise ValueError("type and code are 0..255")
    if args.link is not None:
        return send_link(args)
    if args.udp_socket:
        return send_udp_socket(args)
    if is_ipv6(args.dst):
        if args.port_step or args.ip_proto is not None:
            raise ValueError("--port-step, --ip-proto: not with an IPv6 socket")
        return send_ipv6(args)
    sent = failed = 0
    last_err = None
    for i in range(args.count):
        ident = (args.ident + i * args.id_step) & 0xFFFF
        if args.ip_proto is not None:
            pkt = ip_packet(args.src, args.dst, bytes.fromhex(args.data or ""), args.ttl,
                            args.ip_proto, args.ip_version)
        elif args.udp is not None:
            sport = (args.sport + i * args.port_step) & 0xFFFF
            pkt = ip_packet(args.src, args.dst, udp_datagram(sport, args.udp), args.ttl,
                            socket.IPPROTO_UDP, args.ip_version)
        else:
            msg = icmp_message(args.icmp_type, args.code, ident, args.seq + i, args)
            pkt = ip_packet(args.src, args.dst, msg, args.ttl, version=args.ip_version)
        try:
            sock.sendto(pkt, (args.dst, 0))
            sent += 1
        except OSError as e:
            failed += 1
            last_err = e
            if e.errno == errno.ENOBUFS:
                time.sleep(0.01)
        if args.interval and i + 1 < args.count:
            time.sleep(args.interval)
    return sent, failed, last_err


def serve():
    """Agent mode (--serve): one command per line on stdin, one reply line on stdout.

    Started once per namespace, it saves the seconds a Python start-up costs in a TCG guest
    for each packet, and reads or writes procfs/sysctl files of its namespace without a
    process per access:
      send CRAFT-ARGS...  -> "ok SENT FAILED" or "fail SENT FAILED ERROR"
      cat SRC DST         -> copy SRC (e.g. /proc/net/ip_conntrack) to DST; "ok SIZE"
      get PATH            -> "ok CONTENT" with every newline turned into "|"
      put PATH VALUE      -> write VALUE and a newline to PATH; "ok" or "fail ERROR"
      run PROGRAM ARGS... -> run it (no shell), "ok STATUS OUTPUT" with stdout and stderr,
                             newlines turned into "|"; saves "ip netns exec" for each
                             nft or ping of a test
      bind ADDR PORT      -> keep a UDP socket bound to ADDR, PORT (IPv6 if ADDR has a
                             ":") open until the agent exits, so that datagrams to it are
                             received instead of answered with a port unreachable; "ok"
      hello               -> "ok"
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    p = parser()

    def error(message):
        raise ValueError(message)

    p.error = error
    held = []
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, rest = words[0], words[1:]
        try:
            if cmd == "send":
                sent, failed, err = send(p.parse_args(rest), sock)
                if failed:
                    reply = "fail %d %d %s" % (sent, failed, err)
                else:
                    reply = "ok %d 0" % sent
            elif cmd == "cat":
                with open(rest[0], "rb") as f:
                    data = f.read()
                with open(rest[1], "wb") as f:
                    f.write(data)
                reply = "ok %d" % len(data)
            elif cmd == "get":
                with open(rest[0]) as f:
                    reply = "ok " + f.read().rstrip("\n").replace("\n", "|")
            elif cmd == "put":
                with open(rest[0], "w") as f:
                    f.write(rest[1] + "\n")
                reply = "ok"
            elif cmd == "run":
                r = subprocess.run(rest, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=300, check=False)
                out = r.stdout.decode(errors="replace").rstrip("\n").replace("\n", "|")
                reply = "ok %d %s" % (r.returncode, out)
            elif cmd == "bind":
                family = socket.AF_INET6 if is_ipv6(rest[0]) else socket.AF_INET
                held.append(socket.socket(family, socket.SOCK_DGRAM))
                held[-1].bind((rest[0], int(rest[1])))
                reply = "ok"
            elif cmd == "hello":
                reply = "ok"
            else:
                reply = "fail unknown command " + cmd
        except (OSError, ValueError, IndexError, SystemExit, subprocess.SubprocessError) as e:
            reply = "fail " + str(e)
        print(reply.replace("\n", " "), flush=True)
    return 0


def main():
    if sys.argv[1:] == ["--serve"]:
        return serve()
    args = parser().parse_args()
    if not 0 <= args.icmp_type <= 255 or not 0 <= args.code <= 255:
        parser().error("type and code are 0..255")
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent, failed, last_err = send(args, sock)
    if args.summary or failed:
        msg = "sent %d failed %d" % (sent, failed)
        if last_err is not None:
            msg += " (last error: %s)" % last_err
        print(msg, file=sys.stderr)
    if failed and not args.quiet_errors:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
