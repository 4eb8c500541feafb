#!/usr/bin/python3
"""Crafted packets that try to carry a forbidden transport header past nfips.

Used by test/integration/evasion.test.ts, which builds the namespaces, runs
nfips on the gateway with drop rules for TCP/23, UDP/137, SCTP/2905 and
ICMPv6 echo requests, counts at the server and captures what reaches it.

  evasion.py list --client4 A --server4 B --client6 C --server6 D
      the cases as JSON: name, family, what the server must (not) receive,
      the per-case source port and the counting rule that sees it delivered
  evasion.py send ... --iface IF --gw-mac MAC --manifest FILE
      sends every case from the client namespace (raw Ethernet frames, so no
      kernel on the way rewrites them) and writes the fingerprints of the
      packets each case needs at the server
  evasion.py analyze --manifest FILE --pcap FILE
      which cases' packets arrived, from the server's capture

A case's packets are only forbidden together: a datagram is delivered only
if all the fragments that rebuild it arrive. Fingerprints are the packet
bytes with the fields a router changes (TTL / hop limit, IPv4 checksum)
zeroed.
"""
import argparse
import json
import socket
import struct
import sys
import time

from scapy.all import ICMP, IP, IPv6, SCTP, SCTPChunkInit, TCP, UDP, ICMPv6EchoRequest, RawPcapReader, raw  # noqa: E402

SPORT_BASE = 41000


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Net:
    def __init__(self, a):
        self.c4, self.s4, self.c6, self.s6 = a.client4, a.server4, a.client6, a.server6

    # Transport headers with correct checksums: scapy computes them over a
    # plain IP header, and the pseudo-header does not depend on extension
    # headers (none of these route anywhere).
    def l4(self, family, layer):
        if family == 4:
            return raw(IP(src=self.c4, dst=self.s4) / layer)[20:]
        return raw(IPv6(src=self.c6, dst=self.s6) / layer)[40:]

    def v4(self, proto, data, ident, offset8=0, more=False, options=b""):
        ihl = 5 + len(options) // 4
        hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(data), ident,
                          (0x2000 if more else 0) | offset8, 64, proto, 0,
                          socket.inet_aton(self.c4), socket.inet_aton(self.s4)) + options
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        return hdr + data

    def v6(self, nh, data):
        return struct.pack("!IHBB16s16s", 6 << 28, len(data), nh, 64,
                           socket.inet_pton(socket.AF_INET6, self.c6),
                           socket.inet_pton(socket.AF_INET6, self.s6)) + data


def ext(nh, total, routing=False):
    """A generic extension header of `total` bytes (multiple of 8).

    Options are unknown type 0x1e ("skip if unknown", RFC 8200 4.2): Linux
    accepts them where it refuses PadN runs longer than 7 bytes.
    """
    assert total % 8 == 0 and total >= 8
    if routing:  # type 0, segments left 0: processed and passed over
        return bytes([nh, total // 8 - 1, 0, 0]) + b"\0" * (total - 4)
    body = b""
    left = total - 2
    while left > 0:
        if left == 1:
            body += b"\0"  # Pad1
            left = 0
            break
        n = min(255, left - 2)
        if left - (n + 2) == 1:
            n -= 1
        body += bytes([0x1E, n]) + b"\0" * n
        left -= n + 2
    return bytes([nh, total // 8 - 1]) + body


def frag6(nh, offset_bytes, more, ident):
    return struct.pack("!BBHI", nh, 0, (offset_bytes // 8) << 3 | (1 if more else 0), ident)


def pieces4(net, proto, data, sizes, ident):
    """IPv4 fragments of `data` (the IP payload): sizes of all but the last."""
    out, at = [], 0
    for k, size in enumerate(sizes + [len(data)]):
        last = k == len(sizes)
        chunk = data[at:] if last else data[at:at + size]
        out.append(net.v4(proto, chunk, ident, at // 8, not last))
        at += len(chunk)
    return out


def pieces6(net, nh, data, sizes, ident):
    """IPv6 fragments of `data` (everything after the fixed header, first header `nh`)."""
    out, at = [], 0
    for k, size in enumerate(sizes + [len(data)]):
        last = k == len(sizes)
        chunk = data[at:] if last else data[at:at + size]
        out.append(net.v6(44, frag6(nh, at, not last, ident) + chunk))
        at += len(chunk)
    return out


def cases(net):
    """Each case: packets in send order, and the groups of packet indexes
    that must (expect 'delivered') or must not (expect 'blocked') all reach
    the server."""
    out = []

    def add(name, family, must, expect, packets, groups, counter=None, counter_want=None):
        """counter: [protocol, port] of a server INPUT rule counting what
        this case delivers (after reassembly); it must count nothing for a
        blocked case, and by default something for a delivered one."""
        sport = SPORT_BASE + len(out)
        want = counter_want or ("none" if expect == "blocked" else "some")
        out.append({"name": name, "family": family, "must": must, "expect": expect,
                    "packets": packets(sport), "groups": groups, "sport": sport,
                    "counter": None if counter is None else {"proto": counter[0], "port": counter[1], "want": want}})

    syn = lambda fam, sport, dport=23, payload=b"": net.l4(fam, TCP(sport=sport, dport=dport, flags="S", seq=1000) / payload)
    udp = lambda fam, sport, dport=137, n=30: net.l4(fam, UDP(sport=sport, dport=dport) / (b"N" * n))
    one = [[0]]

    # --- IPv6 extension headers -------------------------------------------
    # With the default 256-byte copy range the TCP header is whole up to 196
    # bytes of options, cut from 200 and out of sight from 216.
    for n in (264, 8, 64, 192, 200, 208, 216, 240, 248, 256, 512, 1024):
        add(f"v6 SYN:23 behind a {n}-byte destination options header", 6, "the SYN", "blocked",
            lambda s, n=n: [net.v6(60, ext(6, n) + syn(6, s))], one, ["tcp", 23])
    add("v6 SYN:23 behind hop-by-hop 8 + routing 24 (segments left 0) + destination options 232", 6, "the SYN", "blocked",
        lambda s: [net.v6(0, ext(43, 8) + ext(60, 24, routing=True) + ext(6, 232) + syn(6, s))], one, ["tcp", 23])
    add("v6 SYN:23 behind 8 destination options headers of 32 bytes", 6, "the SYN", "blocked",
        lambda s: [net.v6(60, b"".join(ext(60 if k < 7 else 6, 32) for k in range(8)) + syn(6, s))], one, ["tcp", 23])
    add("v6 SYN:23 behind a 512-byte hop-by-hop header", 6, "the SYN", "blocked",
        lambda s: [net.v6(0, ext(6, 512) + syn(6, s))], one, ["tcp", 23])
    add("v6 SYN:23 behind an atomic fragment header + 256-byte destination options", 6, "the SYN", "blocked",
        lambda s: [net.v6(44, frag6(60, 0, False, 0x5101) + ext(6, 256) + syn(6, s))], one, ["tcp", 23])
    add("v6 UDP:137 behind a 300-byte destination options header", 6, "the datagram", "blocked",
        lambda s: [net.v6(60, ext(17, 304) + udp(6, s))], one, ["udp", 137])
    add("v6 echo request behind a 264-byte destination options header (rule: drop ICMPv6 type 128)", 6, "the echo request", "blocked",
        lambda s: [net.v6(60, ext(58, 264) + net.l4(6, ICMPv6EchoRequest(id=s, seq=1)))], one, ["icmpv6", 128])
    add("v6 SYN:23 behind experimental next header 253 (generic format)", 6, "the packet (a host that knows header 253 reads a SYN to 23)", "blocked",
        lambda s: [net.v6(253, ext(6, 16) + syn(6, s))], one)
    add("v6 SYN:23 behind unassigned next header 150", 6, "the packet (nothing says 150 is not a header in front of TCP)", "blocked",
        lambda s: [net.v6(150, ext(6, 16) + syn(6, s))], one)

    # --- IPv4 fragments ----------------------------------------------------
    add("v4 SYN:23 in 8-byte fragments", 4, "all fragments (the SYN, reassembled)", "blocked",
        lambda s: pieces4(net, 6, syn(4, s), [8, 8], 0x4001), [[0, 1, 2]], ["tcp", 23])
    add("v4 SYN:23 with a 16-byte first fragment", 4, "both fragments", "blocked",
        lambda s: pieces4(net, 6, syn(4, s), [16], 0x4002), [[0, 1]], ["tcp", 23])
    add("v4 SYN:23 in 8-byte fragments, last first", 4, "all fragments", "blocked",
        lambda s: pieces4(net, 6, syn(4, s), [8, 8], 0x4003)[::-1], [[0, 1, 2]], ["tcp", 23])
    add("v4 SYN:23 in 8-byte fragments with duplicates, out of order (2,0,1,0,2,1)", 4, "one copy of each fragment", "blocked",
        lambda s: [pieces4(net, 6, syn(4, s), [8, 8], 0x4004)[k] for k in (2, 0, 1, 0, 2, 1)], [[0, 1, 2]], ["tcp", 23])

    def overlap4(s):
        # 24 bytes to port 80, then 8 bytes at offset 0 naming port 23: a
        # reassembler that keeps later data delivers a SYN to 23.
        benign = syn(4, s, 80, b"A" * 24)
        evil = syn(4, s, 23, b"A" * 24)
        return [net.v4(6, benign[:24], 0x4005, 0, True), net.v4(6, evil[:8], 0x4005, 0, True), net.v4(6, benign[24:], 0x4005, 3, False)]
    add("v4 overlapping fragments: 24 bytes to port 80, then 8 bytes at offset 0 to port 23", 4, "the three fragments (later data wins: a SYN to 23)", "blocked",
        overlap4, [[0, 1, 2]], ["tcp", 23])

    def offset1(s):
        d = syn(4, s, 23, b"B" * 16)
        return [net.v4(6, d[:16], 0x4006, 0, True), net.v4(6, d[8:24], 0x4006, 1, True), net.v4(6, d[24:], 0x4006, 3, False)]
    add("v4 SYN:23: 16-byte first fragment, then an offset-1 fragment over the TCP flags", 4, "the three fragments", "blocked",
        offset1, [[0, 1, 2]], ["tcp", 23])
    add("v4 SCTP INIT to 2905 in 8-byte fragments (rule: drop SCTP 2905)", 4, "all fragments", "blocked",
        lambda s: pieces4(net, 132, net.l4(4, SCTP(sport=s, dport=2905) / SCTPChunkInit(init_tag=1)), [8, 8], 0x4007), [[0, 1, 2]], ["sctp", 2905])
    add("v4 UDP:137 with an 8-byte first fragment", 4, "both fragments", "blocked",
        lambda s: pieces4(net, 17, udp(4, s), [8], 0x4008), [[0, 1]], ["udp", 137])

    # --- IPv6 fragments ----------------------------------------------------
    add("v6 SYN:23 in 8-byte fragments", 6, "all fragments", "blocked",
        lambda s: pieces6(net, 6, syn(6, s), [8, 8], 0x6001), [[0, 1, 2]], ["tcp", 23])
    add("v6 SYN:23 with a 16-byte first fragment", 6, "both fragments", "blocked",
        lambda s: pieces6(net, 6, syn(6, s), [16], 0x6002), [[0, 1]], ["tcp", 23])
    add("v6 SYN:23 in 8-byte fragments, last first", 6, "all fragments", "blocked",
        lambda s: pieces6(net, 6, syn(6, s), [8, 8], 0x6003)[::-1], [[0, 1, 2]], ["tcp", 23])
    add("v6 SYN:23: first fragment holds only part of a 64-byte destination options header (RFC 7112)", 6, "both fragments", "blocked",
        lambda s: pieces6(net, 60, ext(6, 64) + syn(6, s), [56], 0x6004), [[0, 1]], ["tcp", 23])
    add("v6 UDP:137 behind 300-byte destination options, fragmented after 256 bytes", 6, "both fragments", "blocked",
        lambda s: pieces6(net, 60, ext(17, 304) + udp(6, s), [256], 0x6005), [[0, 1]], ["udp", 137])

    def overlap6(s):
        benign = syn(6, s, 80, b"A" * 24)
        evil = syn(6, s, 23, b"A" * 24)
        return [net.v6(44, frag6(6, 0, True, 0x6006) + benign[:24]), net.v6(44, frag6(6, 0, True, 0x6006) + evil[:8]), net.v6(44, frag6(6, 24, False, 0x6006) + benign[24:])]
    add("v6 overlapping fragments: 24 bytes to port 80, then 8 bytes at offset 0 to port 23", 6, "the three fragments", "blocked",
        overlap6, [[0, 1, 2]], ["tcp", 23])

    # --- Broken transport headers, IP options, ICMP errors -----------------
    def bad_doff(fam, doff):
        def build(s):
            t = bytearray(syn(fam, s))
            t[12] = (doff << 4) | (t[12] & 0x0F)
            return [net.v4(6, bytes(t), 0x4100 + doff) if fam == 4 else net.v6(6, bytes(t))]
        return build
    add("v4 SYN:23 with TCP data offset 4 (16 bytes)", 4, "the segment", "blocked", bad_doff(4, 4), one)
    add("v4 SYN:23 with TCP data offset 15 (past the segment)", 4, "the segment", "blocked", bad_doff(4, 15), one)
    add("v6 SYN:23 with TCP data offset 2", 6, "the segment", "blocked", bad_doff(6, 2), one)
    add("v4 SYN:23 with 40 bytes of IP options", 4, "the SYN", "blocked",
        lambda s: [net.v4(6, syn(4, s), 0x4200, options=b"\x01" * 39 + b"\x00")], one, ["tcp", 23])

    def icmp_err4(s):
        # The server's own SYN:23 toward the client, quoted back by the client.
        quoted = raw(IP(src=net.s4, dst=net.c4) / TCP(sport=s, dport=23, flags="S"))[:28]
        return [net.v4(1, net.l4(4, ICMP(type=3, code=3) / quoted), 0x4300)]
    add("v4 ICMP port unreachable quoting a SYN:23 (the error is allowed; no TCP:23 may result)", 4, "the ICMP error, and no TCP segment to 23", "delivered",
        icmp_err4, one, ["tcp", 23], "none")

    def icmp_err6(s):
        from scapy.all import ICMPv6DestUnreach
        quoted = raw(IPv6(src=net.s6, dst=net.c6) / UDP(sport=s, dport=137) / (b"N" * 30))
        return [net.v6(58, net.l4(6, ICMPv6DestUnreach(code=4) / quoted))]
    add("v6 ICMPv6 port unreachable quoting a UDP:137 datagram", 6, "the ICMPv6 error, and no UDP datagram to 137", "delivered",
        icmp_err6, one, ["udp", 137], "none")

    # --- Controls: what must still work ------------------------------------
    add("control: v4 SYN:80", 4, "the SYN", "delivered", lambda s: [net.v4(6, syn(4, s, 80), 0x4400)], one, ["tcp", 80])
    add("control: v6 SYN:80 behind an 8-byte destination options header", 6, "the SYN", "delivered",
        lambda s: [net.v6(60, ext(6, 8) + syn(6, s, 80))], one, ["tcp", 80])
    add("control: v4 UDP:53 of 1200 bytes in 3 fragments", 4, "the datagram, reassembled", "delivered",
        lambda s: pieces4(net, 17, udp(4, s, 53, 1192), [400, 400], 0x4401), [[0, 1, 2]], ["udp", 53])
    # IPv6 senders fragment at the minimum MTU or above (nfips takes any later fragment below
    # what a first fragment holds at 1280 bytes as a possible overlap).
    add("control: v6 UDP:53 of 3000 bytes in 3 fragments at the minimum MTU", 6, "the datagram, reassembled", "delivered",
        lambda s: pieces6(net, 17, udp(6, s, 53, 2992), [1232, 1232], 0x6401), [[0, 1, 2]], ["udp", 53])
    return out


def fingerprint(pkt: bytes) -> str:
    b = bytearray(pkt)
    if b and b[0] >> 4 == 4 and len(b) >= 20:
        b[8] = 0
        b[10] = b[11] = 0
    elif b and b[0] >> 4 == 6 and len(b) >= 40:
        b[7] = 0
    return bytes(b).hex()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["list", "send", "analyze"])
    for k in ("client4", "server4", "client6", "server6", "iface", "gw_mac", "manifest", "pcap"):
        ap.add_argument("--" + k.replace("_", "-"))
    a = ap.parse_args()
    if a.cmd == "analyze":
        manifest = json.load(open(a.manifest))
        seen = set()
        for data, _meta in RawPcapReader(a.pcap):
            if len(data) > 14 and data[12:14] in (b"\x08\x00", b"\x86\xdd"):
                seen.add(fingerprint(data[14:]))
        result = []
        for c in manifest:
            fps = c["fingerprints"]
            arrived = [g for g in c["groups"] if all(fps[k] in seen for k in g)]
            result.append({"name": c["name"], "arrived": len(arrived) > 0, "packets_seen": sum(1 for f in set(fps) if f in seen), "packets": len(set(fps))})
        json.dump(result, sys.stdout)
        return
    net = Net(a)
    cs = cases(net)
    if a.cmd == "list":
        json.dump([{k: c[k] for k in ("name", "family", "must", "expect", "sport", "counter")} for c in cs], sys.stdout)
        return
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    src_mac = s.getsockname()[4]
    dst_mac = bytes.fromhex(a.gw_mac.replace(":", ""))
    manifest = []
    for c in cs:
        eth = dst_mac + src_mac + (b"\x08\x00" if c["family"] == 4 else b"\x86\xdd")
        for p in c["packets"]:
            s.send(eth + p)
            time.sleep(0.002)
        manifest.append({"name": c["name"], "groups": c["groups"], "fingerprints": [fingerprint(p) for p in c["packets"]]})
        time.sleep(0.01)
    json.dump(manifest, open(a.manifest, "w"))


if __name__ == "__main__":
    main()
