#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Hostile Ethernet frames for icmp_ct_hostile_frames.sh, sent through packet sockets.

Two ends of a veth pair, each in its network namespace, are described by --end (twice):

  --end ns=NETNS,dev=veth0,mac=MAC,v4=ADDR,v4b=ADDR2,v6=ADDR,v6b=ADDR2,ll=LINKLOCAL

A frame "from" an end is written to that end's packet socket (AF_PACKET: none of the sender's
hooks or routing see it) and arrives at the other end, the receiver R, addressed to R's MAC
and (unless a class says otherwise) R's first address. Each receiver tracks one UDP flow of
its own, R:40000 -> S:50000 (`flow`), that the ICMP errors of the classes are about.

  hostile_frames.py --end ... --end ... serve
      one command a line on stdin, one answer a line on stdout:
        flow                    each end sends its UDP datagram (IPv4 and IPv6): "ok"
        classes                 "ok NAME:EXPECT NAME:EXPECT ..."
        class FROM NAME         the frames of class NAME from end FROM (0 or 1) to the
                                other end: "ok SENT FAILED"; an "unseen" class ends with
                                one frame the hook does see, a new echo request
  hostile_frames.py --end ... --end ... random --from N --count C --seed S
      C frames mutated at random from valid ones (both families), from end N; prints
      "sent SENT failed FAILED seconds T frames/s R"
  hostile_frames.py --end ... --end ... pcap FILE
      every class and 1000 random frames from end 0, into a pcap file (no sending)

EXPECT is what Documentation/contract.rst says the receiver's classification hook makes of
each frame of the class: invalid, new, related, untracked; "unseen" for frames the IP layer
drops before PRE_ROUTING (bad IPv4 header checksum or IHL, a length beyond the frame, a bad
hop-by-hop header), so the module never sees them; "any" where the contract leaves the
state open (every frame still gets exactly one).

Frames go out in batches through sendmmsg(2) (ctypes): per-frame sendto() from Python was
the bottleneck under TCG.
"""

import argparse
import ctypes
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from craft import checksum  # noqa: E402  (the selftests' RFC 1071 checksum)

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
CLONE_NEWNET = 0x40000000
FLOW_SPORT = 40000  # the receiver's UDP flow: R:40000 -> S:50000
FLOW_DPORT = 50000
PAYLOAD = b"icmp_ct!"

libc = ctypes.CDLL(None, use_errno=True)


class End:
    """One end of the veth pair: its namespace, device and addresses."""

    def __init__(self, spec):
        fields = dict(kv.split("=", 1) for kv in spec.split(","))
        self.ns = fields["ns"]
        self.dev = fields["dev"]
        self.mac = bytes.fromhex(fields["mac"].replace(":", ""))
        self.v4 = socket.inet_aton(fields["v4"])
        self.v4b = socket.inet_aton(fields["v4b"])
        self.v6 = socket.inet_pton(socket.AF_INET6, fields["v6"])
        self.v6b = socket.inet_pton(socket.AF_INET6, fields["v6b"])
        self.ll = socket.inet_pton(socket.AF_INET6, fields["ll"])
        self.sock = None


def in_netns(name, fn):
    """Runs fn() inside network namespace NAME (/run/netns/NAME), then returns."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + name)
        try:
            return fn()
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


##############################################################################
# Headers


def ipv4(src, dst, proto, payload, options=b"", ihl=None, tot_len=None, frag=0, ttl=64,
         good_checksum=True):
    """An IPv4 header (checksummed over its IHL unless told otherwise) and payload."""
    if ihl is None:
        ihl = 5 + len(options) // 4
    if tot_len is None:
        tot_len = 20 + len(options) + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | (ihl & 0xF), 0, tot_len & 0xFFFF, 0x4242,
                      frag, ttl, proto, 0, src, dst) + options
    csum = checksum(hdr[: max(ihl, 5) * 4])
    if not good_checksum:
        csum ^= 0x5A5A
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def icmp(icmp_type, code, rest, body, good_checksum=True, cut=None):
    """An ICMPv4 message; with cut, cut to that many bytes (checksummed after the cut)."""
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest + body
    if cut is not None:
        msg = msg[:cut]
    if len(msg) >= 4:
        csum = checksum(msg)
        if not good_checksum:
            csum ^= 0x5A5A
        msg = msg[:2] + struct.pack("!H", csum) + msg[4:]
    return msg


def pseudo6(src, dst, length, nh):
    return src + dst + struct.pack("!IxxxB", length, nh)


def icmp6(src, dst, icmp_type, code, rest, body, good_checksum=True, cut=None):
    """An ICMPv6 message, checksummed over the pseudo-header (after a cut)."""
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest + body
    if cut is not None:
        msg = msg[:cut]
    if len(msg) >= 4:
        csum = checksum(pseudo6(src, dst, len(msg), 58) + msg)
        if not good_checksum:
            csum ^= 0x5A5A
        msg = msg[:2] + struct.pack("!H", csum) + msg[4:]
    return msg


def udp(sport, dport, body=PAYLOAD):
    return struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body


def tcp(sport, dport, flags, seq=1000, ack=0, doff=5, options=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 8192, 0, 0) + \
        options


def ipv6(src, dst, nh, payload, payload_len=None, hop_limit=64):
    if payload_len is None:
        payload_len = len(payload)
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len & 0xFFFF, nh, hop_limit, src,
                       dst) + payload


def ext(nh, body_len_units, kind_bytes=b""):
    """A hop-by-hop, destination options or routing header of (units + 1) * 8 bytes: next
    header, length, then kind_bytes (e.g. a routing type) and PadN padding (zeros)."""
    total = (body_len_units + 1) * 8
    return (struct.pack("!BB", nh, body_len_units) + kind_bytes).ljust(total, b"\0")


def opts_ext(nh, units=0):
    """Hop-by-hop or destination options with one PadN option filling the header."""
    total = (units + 1) * 8
    return struct.pack("!BBBB", nh, units, 1, total - 4) + b"\0" * (total - 4)


def srh(nh, segments, addr):
    """A segment routing header (routing type 4) with that many segments (RFC 8754)."""
    hdr = struct.pack("!BBBBBBH", nh, 2 * segments, 4, segments - 1, segments - 1, 0, 0)
    return hdr + addr * segments


def frag6(nh, offset, more):
    return struct.pack("!BBHI", nh, 0, (offset << 3) | (1 if more else 0), 0x42424242)


def ah(nh, units=4):
    """Authentication header of (units + 2) * 4 bytes."""
    return struct.pack("!BBHII", nh, units, 0, 0x100, 1).ljust((units + 2) * 4, b"\0")


##############################################################################
# The frames of one direction


class Direction:
    """Frames from end S to end R."""

    def __init__(self, s, r):
        self.s, self.r = s, r
        self.eth4 = r.mac + s.mac + struct.pack("!H", ETH_P_IP)
        self.eth6 = r.mac + s.mac + struct.pack("!H", ETH_P_IPV6)

    # IPv4 -------------------------------------------------------------------

    def v4(self, proto, payload, **kw):
        src = kw.pop("src", self.s.v4)
        dst = kw.pop("dst", self.r.v4)
        return self.eth4 + ipv4(src, dst, proto, payload, **kw)

    def flow4(self, proto=17, sport=FLOW_SPORT, dport=FLOW_DPORT, body=None):
        """The receiver's flow as an ICMP error embeds it: IP header and 8 bytes."""
        if body is None:
            body = udp(sport, dport)[:8]
        return ipv4(self.r.v4, self.s.v4, proto, body, tot_len=20 + 16)

    def echo4(self, ident, icmp_type=8, **kw):
        return icmp(icmp_type, 0, struct.pack("!HH", ident, 1), PAYLOAD, **kw)

    def error4(self, icmp_type=3, code=3, embedded=None, **kw):
        if embedded is None:
            embedded = self.flow4()
        rest = struct.pack("!I", 1280 if (icmp_type, code) == (3, 4) else 0)
        return icmp(icmp_type, code, rest, embedded, **kw)

    # IPv6 -------------------------------------------------------------------

    def v6(self, nh, payload, **kw):
        src = kw.pop("src", self.s.v6)
        dst = kw.pop("dst", self.r.v6)
        return self.eth6 + ipv6(src, dst, nh, payload, **kw)

    def flow6(self, nh=17, chain=b"", body=None):
        if body is None:
            body = udp(FLOW_SPORT, FLOW_DPORT)[:8]
        return ipv6(self.r.v6, self.s.v6, nh, chain + body, payload_len=len(chain) + 16)

    def echo6(self, ident, icmp_type=128, src=None, dst=None, **kw):
        return icmp6(src or self.s.v6, dst or self.r.v6, icmp_type, 0,
                     struct.pack("!HH", ident, 1), PAYLOAD, **kw)

    def error6(self, icmp_type=1, code=4, embedded=None, src=None, dst=None, **kw):
        if embedded is None:
            embedded = self.flow6()
        rest = struct.pack("!I", 1280 if icmp_type == 2 else 0)
        return icmp6(src or self.s.v6, dst or self.r.v6, icmp_type, code, rest, embedded, **kw)

    # Classes ----------------------------------------------------------------
    # Each returns (expectation, frames).  The expectations follow the contract
    # (Documentation/contract.rst), section named in the comment.

    def templates4(self):
        ident = random.randrange(1, 65535)
        return [self.v4(1, self.echo4(ident)), self.v4(1, self.error4()),
                self.v4(17, udp(41000, 53)), self.v4(6, tcp(41000, 80, 0x02))]

    def templates6(self):
        ident = random.randrange(1, 65535)
        return [self.v6(58, self.echo6(ident)), self.v6(58, self.error6()),
                self.v6(17, udp(41000, 53)), self.v6(6, tcp(41000, 80, 0x02))]

    def c_v4_cut_frame(self):
        # Cut at every offset, the IP header left claiming the whole packet: ip_rcv drops
        # each one (length beyond the frame, or no complete header) before PRE_ROUTING.
        return "unseen", [f[:n] for f in self.templates4() for n in range(14, len(f))]

    def c_v6_cut_frame(self):
        return "unseen", [f[:n] for f in self.templates6() for n in range(14, len(f))]

    def c_v4_truncated_l4(self):
        # "Truncated headers ... INVALID" (Malformed input): the IP header consistent (its
        # length fixed), the transport header or the error's embedded header and 8 bytes
        # cut short at every offset, ICMP checksummed after the cut.
        frames = [self.v4(1, self.echo4(7, cut=n)) for n in range(8)]
        frames += [self.v4(1, self.error4(cut=n)) for n in range(36)]
        frames += [self.v4(17, udp(41000, 53)[:n]) for n in range(8)]
        frames += [self.v4(6, tcp(41000, 80, 0x02)[:n]) for n in range(20)]
        return "invalid", frames

    def c_v6_truncated_l4(self):
        frames = [self.v6(58, self.echo6(7, cut=n)) for n in range(8)]
        frames += [self.v6(58, self.error6(cut=n)) for n in range(56)]
        frames += [self.v6(17, udp(41000, 53)[:n]) for n in range(8)]
        frames += [self.v6(6, tcp(41000, 80, 0x02)[:n]) for n in range(20)]
        return "invalid", frames

    def c_v4_tcp_bad_offset(self):
        # A TCP data offset below 5 words or beyond the segment: a malformed header.
        frames = [self.v4(6, tcp(41000, 80, 0x02, doff=d)) for d in (0, 1, 2, 3, 4, 6, 15)]
        return "invalid", frames

    def c_v4_bad_ihl(self):
        # IHL below 5, or beyond the packet: ip_rcv drops them.
        pkt = self.echo4(9)
        frames = [self.v4(1, pkt, ihl=i) for i in range(5)]
        frames += [self.v4(1, pkt, ihl=i, options=b"\x01" * ((i - 5) * 4),
                           tot_len=20 + len(pkt)) for i in range(11, 16)]
        return "unseen", frames

    def c_v4_ihl_swallows_icmp(self):
        # An IHL that takes the ICMP header into the options (checksum over it fixed): what
        # is left is an unknown type or a truncated header.
        pkt = self.echo4(9)
        frames = []
        for i in (7, 8, 9):
            raw = ipv4(self.s.v4, self.r.v4, 1, pkt)
            raw = bytes([0x40 | i]) + raw[1:10] + b"\0\0" + raw[12:]
            csum = checksum(raw[: i * 4])
            frames.append(self.eth4 + raw[:10] + struct.pack("!H", csum) + raw[12:])
        return "invalid", frames

    def c_v4_ip_options(self):
        # Options (garbage, or well-formed ones) are IP's business, after PRE_ROUTING: a
        # first echo request with options is NEW ("The first request is NEW").
        frames = []
        for n in range(1, 11):
            garbage = bytes(random.randrange(256) for _ in range(4 * n))
            frames.append(self.v4(1, self.echo4(1000 + n), options=garbage))
        frames.append(self.v4(1, self.echo4(1100), options=b"\x94\x04\0\0"))  # router alert
        frames.append(self.v4(1, self.echo4(1101), options=b"\x01\x01\x01\x00"))  # NOPs, EOL
        return "new", frames

    def c_v4_bad_ip_checksum(self):
        return "unseen", [self.v4(1, self.echo4(11), good_checksum=False),
                          self.v4(1, self.error4(), good_checksum=False),
                          self.v4(17, udp(41000, 53), good_checksum=False)]

    def c_v4_bad_icmp_checksum(self):
        # "a bad ICMP checksum (checked on arriving packets while ip_ct_checksum = 1)"
        frames = [self.v4(1, self.echo4(100 + i, good_checksum=False)) for i in range(8)]
        frames += [self.v4(1, icmp(t, 0, struct.pack("!HH", 5, 1), b"\0" * 12,
                                   good_checksum=False)) for t in (13, 15, 17)]
        frames += [self.v4(1, self.error4(good_checksum=False)),
                   self.v4(1, self.error4(3, 4, good_checksum=False)),
                   self.v4(1, self.error4(11, 0, good_checksum=False))]
        return "invalid", frames

    def c_v6_bad_icmp_checksum(self):
        frames = [self.v6(58, self.echo6(100 + i, good_checksum=False)) for i in range(8)]
        frames += [self.v6(58, self.error6(t, 0, good_checksum=False)) for t in (1, 2, 3, 4)]
        return "invalid", frames

    def c_v4_unknown_type(self):
        # "Any other ICMP type that is not an error below (IPv4 or IPv6) is INVALID."
        known = {0, 3, 4, 5, 8, 11, 12, 13, 14, 15, 16, 17, 18, 42, 43}
        return "invalid", [self.v4(1, icmp(t, 0, struct.pack("!HH", 3, 1), PAYLOAD))
                           for t in range(256) if t not in known]

    def c_v6_unknown_type(self):
        known = {128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 139, 140, 143}
        return "invalid", [self.v6(58, icmp6(self.s.v6, self.r.v6, t, 0,
                                             struct.pack("!HH", 3, 1), PAYLOAD))
                           for t in range(128, 256) if t not in known]

    def c_v4_reply_without_request(self):
        # "A reply that matches nothing is INVALID."
        return "invalid", [self.v4(1, icmp(t, 0, struct.pack("!HH", 31337, 1), b"\0" * 12))
                           for t in (0, 14, 16, 18) for _ in range(4)] + \
            [self.v4(1, icmp(43, 0, struct.pack("!HBB", 31337, 1, 0), b""))]

    def c_v6_reply_without_request(self):
        return "invalid", [self.v6(58, icmp6(self.s.v6, self.r.v6, t, 0,
                                             struct.pack("!HH", 31337, 1), b"\0" * 24))
                           for t in (129, 140) for _ in range(4)]

    def c_v4_error_related(self):
        # Error types IPv4 3, 4, 5, 11, 12 about a tracked flow: RELATED.
        pairs = [(3, c) for c in range(16)] + [(4, 0), (5, 0), (5, 1), (11, 0), (11, 1),
                                               (12, 0)]
        return "related", [self.v4(1, self.error4(t, c)) for t, c in pairs]

    def c_v6_error_related(self):
        # "IPv6 1, 2, 3, 4 and every other type below 128 (the error range of RFC 4443)".
        return "related", [self.v6(58, self.error6(t, 0)) for t in range(1, 128)]

    def c_v4_error_about_nothing(self):
        # "If they match a tracked entry ... RELATED; otherwise it is INVALID."
        frames = []
        for sport in range(1, 9):
            emb = self.flow4(sport=FLOW_SPORT + sport)
            frames += [self.v4(1, self.error4(t, c, emb)) for t, c in
                       ((3, 3), (3, 4), (11, 0), (12, 0), (4, 0), (5, 1))]
        return "invalid", frames

    def c_v6_error_about_nothing(self):
        frames = []
        for sport in range(1, 9):
            emb = self.flow6(body=udp(FLOW_SPORT + sport, FLOW_DPORT)[:8])
            frames += [self.v6(58, self.error6(t, 0, emb)) for t in (1, 2, 3, 4, 100)]
        return "invalid", frames

    def c_v4_error_in_error(self):
        # "An error embedded in an error is INVALID."
        frames = []
        for t, c in ((3, 3), (11, 0), (12, 0), (4, 0), (3, 4)):
            inner = icmp(t, c, b"\0" * 4, self.flow4())[:8]
            emb = ipv4(self.r.v4, self.s.v4, 1, inner, tot_len=20 + 64)
            frames.append(self.v4(1, self.error4(3, 3, emb)))
            frames.append(self.v4(1, self.error4(11, 0, emb)))
        return "invalid", frames

    def c_v6_error_in_error(self):
        frames = []
        for t in (1, 2, 3, 4, 100):
            inner = icmp6(self.r.v6, self.s.v6, t, 0, b"\0" * 4, self.flow6())[:8]
            emb = ipv6(self.r.v6, self.s.v6, 58, inner, payload_len=64)
            frames.append(self.v6(58, self.error6(1, 4, emb)))
            frames.append(self.v6(58, self.error6(3, 0, emb)))
        return "invalid", frames

    def c_v4_wrong_inner_protocol(self):
        # The flow's addresses and ports under another protocol: tracked is only UDP.
        return "invalid", [self.v4(1, self.error4(3, 3, self.flow4(proto=p)))
                           for p in (0, 1, 6, 47, 50, 132, 136, 255)]

    def c_v6_wrong_inner_protocol(self):
        return "invalid", [self.v6(58, self.error6(1, 4, self.flow6(nh=p)))
                           for p in (6, 33, 47, 50, 58, 132, 136, 255)]

    def c_v4_spoofed_outer_dst(self):
        # "the error's outer destination must be the address that sent the embedded
        # packet; otherwise the error is INVALID": sent to R's other address.
        return "invalid", [self.v4(1, self.error4(t, c), dst=self.r.v4b)
                           for t, c in ((3, 3), (3, 1), (3, 4), (11, 0), (12, 0))]

    def c_v6_spoofed_outer_dst(self):
        return "invalid", [self.v6(58, self.error6(t, 0, dst=self.r.v6b), dst=self.r.v6b)
                           for t in (1, 2, 3, 4)]

    def c_v4_spoofed_outer_src(self):
        # Only the outer destination is checked: an error from any router is RELATED.
        srcs = [bytes([192, 0, 2, i]) for i in range(1, 6)] + [self.s.v4b]
        return "related", [self.v4(1, self.error4(), src=a) for a in srcs]

    def c_v6_spoofed_outer_src(self):
        srcs = [socket.inet_pton(socket.AF_INET6, "2001:db8::%x" % i) for i in range(1, 6)]
        return "related", [self.v6(58, self.error6(1, 4, src=a), src=a) for a in srcs]

    def c_v4_nonfirst_fragment(self):
        # "Non-first fragments carry no transport header: they are UNTRACKED".
        frames = []
        for proto, body in ((1, self.echo4(77)), (17, udp(41000, 53)), (6, tcp(1, 2, 2)),
                            (47, PAYLOAD)):
            for off in (1, 2, 185, 8191):
                frames.append(self.v4(proto, body, frag=off))
                frames.append(self.v4(proto, body, frag=0x2000 | off))
        return "untracked", frames

    def c_v6_nonfirst_fragment(self):
        frames = []
        for nh, body in ((58, self.echo6(77)), (17, udp(41000, 53)), (6, tcp(1, 2, 2)),
                         (59, PAYLOAD)):
            for off in (1, 2, 185, 8191):
                for more in (False, True):
                    frames.append(self.v6(44, frag6(nh, off, more) + body))
        return "untracked", frames

    def c_v4_first_fragment(self):
        # Fragmented ICMP that carries its header: the contract only names drop_fragments.
        return "any", [self.v4(1, self.echo4(300 + i), frag=0x2000) for i in range(4)] + \
            [self.v4(1, self.error4(), frag=0x2000)]

    def c_v4_tcp_rst_without_entry(self):
        # "A RST without entry is always INVALID."
        return "invalid", [self.v4(6, tcp(42000 + i, 80, f)) for i in range(4)
                           for f in (0x04, 0x14)]

    def c_v6_tcp_rst_without_entry(self):
        return "invalid", [self.v6(6, tcp(42000 + i, 80, f)) for i in range(4)
                           for f in (0x04, 0x14)]

    def ext_chains(self):
        """Well-formed extension header chains ending in next header nh, as functions."""
        addr = self.r.v6
        return [
            lambda nh: opts_ext(nh),  # hop-by-hop (first only, see below)
            lambda nh: opts_ext(nh, 3),  # destination options
            lambda nh: ext(nh, 2, b"\0\0"),  # routing type 0, segments left 0
            lambda nh: ext(nh, 2, b"\2\0"),  # routing type 2
            lambda nh: srh(nh, 1, addr),
            lambda nh: srh(nh, 16, addr),
            lambda nh: srh(nh, 127, addr),  # long SRv6: 2 KB
            lambda nh: frag6(nh, 0, False),  # atomic fragment
            lambda nh: ah(nh),
        ]

    def chain6(self, kinds, last_nh, payload):
        """next header of the first header, and the bytes: kinds (indexes into ext_chains)
        in order, then payload after last_nh."""
        makers = self.ext_chains()
        codes = {0: 0, 1: 60, 2: 43, 3: 43, 4: 43, 5: 43, 6: 43, 7: 44, 8: 51}
        data, nh = payload, last_nh
        for k in reversed(kinds):
            data = makers[k](nh) + data
            nh = codes[k]
        return nh, data

    def c_v6_extension_headers(self):
        # A first echo request behind well-formed extension headers (hop-by-hop, routing
        # incl. SRv6 of 1, 16 and 127 segments, atomic fragment, destination options, AH):
        # NEW, like one without them.
        frames = []
        chains = [[k] for k in range(9)] + [[0, 1, 2], [0, 1, 6, 7, 8, 1], [1, 5, 8, 7],
                                            [0, 1, 4, 7, 8, 1]]
        for i, kinds in enumerate(chains):
            nh, data = self.chain6(kinds, 58, self.echo6(2000 + i))
            frames.append(self.v6(nh, data))
        return "new", frames

    def c_v6_esp_and_none(self):
        # ESP and "no next header" are protocols like any other: "NEW" (first packet).
        frames = [self.v6(50, struct.pack("!II", 0x1000, i) + os.urandom(24)) for i in range(4)]
        frames += [self.v6(59, os.urandom(16)) for _ in range(2)]
        nh, data = self.chain6([1, 8], 59, b"")
        frames.append(self.v6(nh, data))
        nh, data = self.chain6([2], 50, struct.pack("!II", 0x1000, 9) + b"\0" * 16)
        frames.append(self.v6(nh, data))
        return "new", frames

    def c_v6_truncated_extension(self):
        # A packet that ends inside a routing, destination options, fragment or AH header
        # (payload length fixed): a truncated header, INVALID.
        frames = []
        for k in (1, 2, 4, 6, 7, 8):
            nh, data = self.chain6([k], 58, self.echo6(3000 + k))
            hdr_len = len(data) - 16
            for n in sorted(set([1, 2, 4, hdr_len // 2, hdr_len - 1])):
                frames.append(self.v6(nh, data[:n]))
        return "invalid", frames

    def c_v6_truncated_hop_by_hop(self):
        # A hop-by-hop header cut short: ip6_rcv_core drops it before PRE_ROUTING.
        nh, data = self.chain6([0], 58, self.echo6(3100))
        return "unseen", [self.v6(nh, data[:n]) for n in (1, 2, 4, 7)]

    def c_v6_long_chain(self):
        # More extension headers than RFC 8200 allows: the contract says nothing.
        frames = []
        for n in (9, 12, 40):
            nh, data = self.chain6([1] * n, 58, self.echo6(3200 + n))
            frames.append(self.v6(nh, data))
        return "any", frames

    def c_v6_error_embedded_extension(self):
        # "IPv6: the header, its extension headers and 8 bytes of the transport header".
        frames = []
        for kinds in ([1], [2], [7], [8], [1, 4, 8], [0]):
            makers = self.ext_chains()
            chain, nh = b"", 17
            for k in reversed(kinds):
                chain = makers[k](nh) + chain
                nh = {0: 0, 1: 60, 2: 43, 4: 43, 7: 44, 8: 51}[k]
            frames.append(self.v6(58, self.error6(1, 4, self.flow6(nh=nh, chain=chain))))
        return "related", frames

    def c_v6_redirect(self):
        # "RELATED under nf_conntrack's conditions (code 0, hop limit 255, a link-local
        # source, a redirected-header option first ...)".
        frames = [self.redirect6(0, 255, self.s.ll, True)]
        return "related", frames

    def c_v6_bad_redirect(self):
        # ... "and INVALID otherwise".
        return "invalid", [self.redirect6(1, 255, self.s.ll, True),
                           self.redirect6(0, 64, self.s.ll, True),
                           self.redirect6(0, 255, self.s.v6, True),
                           self.redirect6(0, 255, self.s.ll, False)]

    def redirect6(self, code, hop_limit, src, with_option):
        emb = self.flow6()
        body = self.s.v6 + self.s.v6
        if with_option:
            body += struct.pack("!BB6x", 4, (8 + len(emb)) // 8) + emb
        else:
            body += struct.pack("!BB", 1, 1) + self.s.mac
        msg = icmp6(src, self.r.v6, 137, code, b"\0" * 4, body)
        return self.v6(58, msg, src=src, hop_limit=hop_limit)

    def marker(self):
        """A first echo request (NEW) sent after the frames of an "unseen" class: once the
        receiver's hook has seen it, it would have seen the frames before it."""
        return self.v4(1, self.echo4(random.randrange(1, 65536)))

    def classes(self):
        return {name[2:]: getattr(self, name) for name in sorted(dir(self))
                if name.startswith("c_")}

    # Random mutation --------------------------------------------------------

    def mutation_templates(self, rng):
        """Valid frames of every kind, with the byte offsets of their ids or ports."""
        t = []
        for ident in range(4):
            t.append(self.v4(1, self.echo4(ident)))
            t.append(self.v6(58, self.echo6(ident)))
        t += [self.v4(1, self.echo4(5, icmp_type=0)), self.v4(1, self.error4()),
              self.v4(1, self.error4(3, 4)), self.v4(1, self.error4(11, 0)),
              self.v4(1, icmp(13, 0, struct.pack("!HH", 5, 1), b"\0" * 12)),
              self.v4(1, icmp(17, 0, struct.pack("!HH", 5, 1), b"\0" * 4)),
              self.v4(17, udp(41000, 53)), self.v4(6, tcp(41000, 80, 0x02)),
              self.v4(6, tcp(41000, 80, 0x10)), self.v4(47, PAYLOAD),
              self.v4(1, self.echo4(8), options=b"\x01" * 8),
              self.v4(1, self.echo4(9), frag=0x2000), self.v4(17, udp(1, 2), frag=3)]
        t += [self.v6(58, self.error6()), self.v6(58, self.error6(2, 0)),
              self.v6(17, udp(41000, 53)), self.v6(6, tcp(41000, 80, 0x02)),
              self.redirect6(0, 255, self.s.ll, True), self.v6(50, b"\0" * 24),
              self.v6(58, icmp6(self.s.v6, self.r.v6, 135, 0, b"\0" * 4, self.r.v6))]
        for kinds in ([0], [1], [2], [6], [7], [8], [0, 1, 4, 7, 8, 1]):
            nh, data = self.chain6(kinds, 58, self.echo6(rng.randrange(65536)))
            t.append(self.v6(nh, data))
        t.append(self.v6(44, frag6(58, 5, True) + self.echo6(6)))
        return t

    def random_frames(self, rng, count):
        """count frames, each a valid template with its id or port bytes and source
        randomized, then (mostly) mutated, then (mostly) with lengths and checksums fixed
        so that it gets past the IP layer to the hooks."""
        templates = self.mutation_templates(rng)
        r = rng.random
        randrange = rng.randrange
        for _ in range(count):
            f = bytearray(templates[randrange(len(templates))])
            v6 = f[12:14] == b"\x86\xdd"
            l3 = 14
            l4 = l3 + (40 if v6 else (f[l3] & 0xF) * 4)
            if len(f) >= l4 + 8 and r() < 0.6:
                f[l4 + 4:l4 + 8] = rng.randbytes(4)  # id and sequence, or ports and length
            if r() < 0.15:  # spoofed source
                if v6:
                    f[l3 + 16:l3 + 24] = rng.randbytes(8)
                else:
                    f[l3 + 14:l3 + 16] = rng.randbytes(2)
            if r() < 0.9:
                for _ in range(1 + int(r() * r() * 8)):
                    op = randrange(6)
                    n = len(f)
                    if op == 0 and n > l3:  # flip a bit
                        i = randrange(l3, n)
                        f[i] ^= 1 << randrange(8)
                    elif op == 1 and n > l3:  # an interesting byte
                        f[randrange(l3, n)] = (0, 0xFF, 0x7F, 0x80, 1, 4, 8, 0x3A,
                                               randrange(256))[randrange(9)]
                    elif op == 2 and n > l3:  # truncate
                        del f[randrange(l3, n):]
                    elif op == 3:  # append
                        f += rng.randbytes(randrange(1, 64))
                    elif op == 4 and n > l4:  # delete a range
                        i = randrange(l4, n)
                        del f[i:i + randrange(1, 9)]
                    elif op == 5 and n > l4:  # insert
                        i = randrange(l4, n)
                        f[i:i] = rng.randbytes(randrange(1, 9))
            if r() < 0.8 and len(f) >= l3 + (40 if v6 else 20):
                fix_lengths(f, v6, r() < 0.7)
            yield bytes(f)


def fix_lengths(f, v6, fix_icmp):
    """Makes the IP length fields (and IPv4 header checksum) agree with the frame, and with
    fix_icmp the ICMP checksum of a packet whose IP header is followed directly by ICMP."""
    l3 = 14
    if v6:
        f[l3 + 4:l3 + 6] = struct.pack("!H", (len(f) - l3 - 40) & 0xFFFF)
        if fix_icmp and f[l3 + 6] == 58 and len(f) >= l3 + 44:
            f[l3 + 42:l3 + 44] = b"\0\0"
            msg = bytes(f[l3 + 40:])
            csum = checksum(pseudo6(bytes(f[l3 + 8:l3 + 24]), bytes(f[l3 + 24:l3 + 40]),
                                    len(msg), 58) + msg)
            f[l3 + 42:l3 + 44] = struct.pack("!H", csum)
        return
    ihl = f[l3] & 0xF
    if ihl < 5 or l3 + ihl * 4 > len(f):
        return
    f[l3 + 2:l3 + 4] = struct.pack("!H", (len(f) - l3) & 0xFFFF)
    f[l3 + 10:l3 + 12] = b"\0\0"
    f[l3 + 10:l3 + 12] = struct.pack("!H", checksum(bytes(f[l3:l3 + ihl * 4])))
    l4 = l3 + ihl * 4
    fragment = struct.unpack("!H", f[l3 + 6:l3 + 8])[0] & 0x3FFF
    if fix_icmp and f[l3 + 9] == 1 and len(f) >= l4 + 4 and not fragment:
        f[l4 + 2:l4 + 4] = b"\0\0"
        f[l4 + 2:l4 + 4] = struct.pack("!H", checksum(bytes(f[l4:])))


##############################################################################
# Sending


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(IoVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


BATCH = 256


def send_frames(sock, frames, progress=0):
    """Sends every frame (an iterable) with sendmmsg, BATCH at a time; returns (sent,
    failed). A frame the kernel refuses (e.g. shorter than the Ethernet header) counts as
    failed and is skipped."""
    sent = failed = 0
    fd = sock.fileno()
    iovs = (IoVec * BATCH)()
    msgs = (MMsgHdr * BATCH)()
    for i in range(BATCH):
        msgs[i].hdr.iov = ctypes.pointer(iovs[i])
        msgs[i].hdr.iovlen = 1
    batch = []

    def flush():
        nonlocal sent, failed
        buf = ctypes.create_string_buffer(b"".join(batch))
        base = ctypes.addressof(buf)
        off = 0
        for i, fr in enumerate(batch):
            iovs[i].base = base + off
            iovs[i].len = len(fr)
            off += len(fr)
        done = 0
        while done < len(batch):
            n = libc.sendmmsg(fd, ctypes.byref(msgs, done * ctypes.sizeof(MMsgHdr)),
                              len(batch) - done, 0)
            if n < 0:
                err = ctypes.get_errno()
                if err == 105:  # ENOBUFS: the queue is full, wait for the receiver
                    time.sleep(0.001)
                    continue
                failed += 1  # this frame is refused: skip it
                done += 1
                continue
            sent += n
            done += n
        batch.clear()

    for fr in frames:
        batch.append(fr)
        if len(batch) == BATCH:
            flush()
            if progress and sent // progress != (sent - BATCH) // progress:
                progress_line(sent)
    if batch:
        flush()
    return sent, failed


def progress_line(sent):
    try:
        with open("/dev/kmsg", "w") as kmsg:
            kmsg.write("hostile_frames: pid %d sent %d frames\n" % (os.getpid(), sent))
    except OSError:
        pass


def open_sockets(ends):
    for end in ends:
        def make(end=end):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.bind((end.dev, 0))
            return s
        end.sock = in_netns(end.ns, make)


def send_flow(ends):
    """Each end sends its UDP datagram R:40000 -> S:50000 (IPv4 and IPv6)."""
    for r, s in ((ends[0], ends[1]), (ends[1], ends[0])):
        def go(r=r, s=s):
            for family, src, dst in ((socket.AF_INET, r.v4, s.v4), (socket.AF_INET6, r.v6, s.v6)):
                with socket.socket(family, socket.SOCK_DGRAM) as u:
                    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    u.bind((socket.inet_ntop(family, src), FLOW_SPORT))
                    u.sendto(PAYLOAD, (socket.inet_ntop(family, dst), FLOW_DPORT))
        in_netns(r.ns, go)


def serve(ends):
    open_sockets(ends)
    dirs = [Direction(ends[0], ends[1]), Direction(ends[1], ends[0])]
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "flow":
                send_flow(ends)
                reply = "ok"
            elif words[0] == "classes":
                reply = "ok " + " ".join("%s:%s" % (name, fn()[0])
                                         for name, fn in dirs[0].classes().items())
            elif words[0] == "class":
                d = dirs[int(words[1])]
                expect, frames = d.classes()[words[2]]()
                if expect == "unseen":
                    frames.append(d.marker())
                sent, failed = send_frames(d.s.sock, frames)
                reply = "ok %d %d" % (sent, failed)
            else:
                reply = "fail unknown command " + words[0]
        except (OSError, KeyError, IndexError, ValueError) as e:
            reply = "fail %s" % e
        print(reply, flush=True)
    return 0


def run_random(ends, args):
    open_sockets(ends[args.sender:args.sender + 1])
    d = Direction(ends[args.sender], ends[1 - args.sender])
    rng = random.Random(args.seed)
    start = time.monotonic()
    frames = d.random_frames(rng, args.count)
    if args.dry_run:
        sent, failed = sum(1 for _ in frames), 0
    else:
        sent, failed = send_frames(d.s.sock, frames, 50000 if args.count >= 100000 else 0)
    secs = time.monotonic() - start
    print("sent %d failed %d seconds %.1f frames/s %.0f" %
          (sent, failed, secs, sent / secs if secs else 0), flush=True)
    return 0


def write_pcap(ends, path):
    d = Direction(ends[0], ends[1])
    frames = [f for fn in d.classes().values() for f in fn()[1]]
    frames += list(d.random_frames(random.Random(1), 1000))
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for f in frames:
            out.write(struct.pack("<IIII", 0, 0, len(f), len(f)) + f)
    print("wrote %d frames" % len(frames))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--end", action="append", required=True, type=End)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve")
    r = sub.add_parser("random")
    r.add_argument("--from", type=int, dest="sender", choices=(0, 1), required=True)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--dry-run", action="store_true", help="only generate (to time that)")
    c = sub.add_parser("pcap")
    c.add_argument("file")
    args = p.parse_args()
    if len(args.end) != 2:
        p.error("two --end")
    if args.cmd == "serve":
        return serve(args.end)
    if args.cmd == "random":
        return run_random(args.end, args)
    return write_pcap(args.end, args.file)


if __name__ == "__main__":
    sys.exit(main())
