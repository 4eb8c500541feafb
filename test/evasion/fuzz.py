#!/usr/bin/python3
"""Randomly mutated packets for nfips, sent from the client namespace.

  fuzz.py --count N --seed S --rate PPS --iface IF --gw-mac MAC
          --client4 A --server4 B --client6 C --server6 D

The corpus is valid client-to-server traffic of both families (TCP, UDP,
SCTP, ICMP, ICMPv6, extension chains, fragments) plus every crafted evasion
case. Each packet sent is one corpus packet with one to three mutations
(bit flips, interesting values in the headers, truncation, growth, splicing,
header-field changes, inserted extension headers); most then get their IP
length and checksum fixed so the gateway's kernel does not discard them
before the queue. Prints one JSON line: packets sent, per family, seconds.
"""
import argparse
import json
import random
import socket
import struct
import sys
import time
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evasion as ev  # noqa: E402
from scapy.all import ICMP, SCTP, SCTPChunkInit, TCP, UDP, ICMPv6EchoRequest  # noqa: E402

INTERESTING = [0, 1, 2, 4, 5, 6, 8, 0x0F, 0x10, 17, 23, 0x20, 0x3F, 0x40, 43, 44, 50, 51, 58, 59, 60, 0x7F, 0x80, 132, 135, 137, 139, 140, 0xC0, 0xFE, 0xFF, 253, 254]
NEXT_HEADERS = [0, 6, 17, 43, 44, 50, 51, 58, 59, 60, 132, 135, 139, 140, 150, 253, 254, 255]


def corpus(net):
    out = []
    for fam in (4, 6):
        def wrap(proto, l4, ident=0x1111):
            return net.v4(proto, l4, ident) if fam == 4 else net.v6(proto, l4)
        for dport in (22, 23, 80, 443, 2323):
            out.append((fam, wrap(6, net.l4(fam, TCP(sport=40000 + dport, dport=dport, flags="S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])))))
            out.append((fam, wrap(6, net.l4(fam, TCP(sport=40000 + dport, dport=dport, flags="PA") / (b"x" * 40)))))
        for dport in (53, 137, 138, 5353):
            out.append((fam, wrap(17, net.l4(fam, UDP(sport=50000, dport=dport) / (b"q" * 30)))))
        out.append((fam, wrap(132, net.l4(fam, SCTP(sport=3000, dport=2905) / SCTPChunkInit(init_tag=7)))))
        if fam == 4:
            out.append((4, net.v4(1, net.l4(4, ICMP(type=8, id=7) / (b"p" * 32)), 0x2222)))
            out.append((4, net.v4(1, net.l4(4, ICMP(type=13, id=7) / (b"\0" * 12)), 0x2223)))
            syn = net.l4(4, TCP(sport=40023, dport=23, flags="S") / (b"d" * 40))
            out += [(4, p) for p in ev.pieces4(net, 6, syn, [24, 24], 0x2224)]
            out += [(4, p) for p in ev.pieces4(net, 17, net.l4(4, UDP(sport=50137, dport=137) / (b"n" * 100)), [40, 40], 0x2225)]
            out.append((4, net.v4(6, net.l4(4, TCP(sport=40024, dport=23, flags="S")), 0x2226, options=b"\x01" * 3 + b"\x00")))
        else:
            out.append((6, net.v6(58, net.l4(6, ICMPv6EchoRequest(id=7) / (b"p" * 32)))))
            syn = net.l4(6, TCP(sport=40023, dport=23, flags="S") / (b"d" * 40))
            for chain, nh in ((ev.ext(6, 8), 60), (ev.ext(60, 8) + ev.ext(6, 64), 0), (ev.ext(6, 24, routing=True), 43), (ev.ext(6, 200), 60)):
                out.append((6, net.v6(nh, chain + syn)))
            out.append((6, net.v6(60, ev.ext(17, 16) + net.l4(6, UDP(sport=50137, dport=137) / (b"n" * 30)))))
            out += [(6, p) for p in ev.pieces6(net, 6, syn, [24, 24], 0x2227)]
            out += [(6, p) for p in ev.pieces6(net, 60, ev.ext(6, 32) + syn, [56], 0x2228)]
    for c in ev.cases(net):
        out += [(c["family"], p) for p in c["packets"]]
    return out


def l4_offset(b):
    if not b:
        return 0
    return (b[0] & 0x0F) * 4 if b[0] >> 4 == 4 else 40


def mutate(rng, fam, pkt, pool):
    b = bytearray(pkt)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        op = rng.randrange(10)
        if not b:
            b = bytearray(pkt)
        if op == 0:  # bit flips anywhere
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # an interesting value in the headers
            b[rng.randrange(min(len(b), 96))] = rng.choice(INTERESTING)
        elif op == 2:  # truncation
            b = b[: rng.randint(1, len(b))]
        elif op == 3:  # growth
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == 4:  # splice two packets of the same family
            other = rng.choice(pool[fam])
            cut = rng.randint(1, len(b))
            b = b[:cut] + bytearray(other[rng.randint(0, len(other) - 1):])
        elif op == 5 and fam == 4 and len(b) >= 20:  # fragment fields
            off = rng.choice((0, 0, 1, 2, 3, rng.randrange(0x2000)))
            b[6:8] = struct.pack("!H", (rng.choice((0, 0x2000, 0x4000)) | off))
        elif op == 5 and fam == 6 and len(b) >= 40:  # next header
            b[6] = rng.choice(NEXT_HEADERS)
        elif op == 6 and fam == 4 and len(b) >= 20:  # header length
            b[0] = 0x40 | rng.randrange(16)
        elif op == 6 and fam == 6 and len(b) >= 48:  # insert an extension header
            nh = rng.choice(NEXT_HEADERS)
            n = rng.choice((1, 2, 4, 8, 27, 33))
            hdr = bytearray([b[6], n - 1]) + bytearray(8 * n - 2)
            if nh == 44:
                hdr = bytearray([b[6], 0]) + bytearray(struct.pack("!HI", rng.choice((0, 1, 8, 9)), rng.randrange(1 << 32)))
            b = b[:40] + hdr + b[40:]
            b[6] = nh
        elif op == 7:  # TCP data offset, or whatever byte 12 of the transport is
            i = l4_offset(b) + 12
            if i < len(b):
                b[i] = (rng.randrange(16) << 4) | (b[i] & 0x0F)
        elif op == 8:  # transport ports
            i = l4_offset(b) + rng.choice((0, 2))
            if i + 1 < len(b):
                b[i:i + 2] = struct.pack("!H", rng.choice((23, 137, 2905, 80, 0, 65535, rng.randrange(65536))))
        elif op == 9:  # length fields
            if fam == 4 and len(b) >= 20:
                b[2:4] = struct.pack("!H", rng.randrange(len(b) + 32))
            elif fam == 6 and len(b) >= 40:
                b[4:6] = struct.pack("!H", rng.randrange(len(b)))
    # Mostly keep the IP layer plausible, or the gateway's kernel discards the
    # packet before the queue and nfips never sees it.
    if fam == 4 and len(b) >= 20 and rng.random() < 0.9:
        if rng.random() < 0.9:
            b[2:4] = struct.pack("!H", len(b))
        b[10:12] = b"\0\0"
        ihl = (b[0] & 0x0F) * 4
        if 20 <= ihl <= len(b):
            b[10:12] = struct.pack("!H", ev.csum(bytes(b[:ihl])))
    elif fam == 6 and len(b) >= 40 and rng.random() < 0.9:
        b[4:6] = struct.pack("!H", len(b) - 40)
    return bytes(b)


def main():
    ap = argparse.ArgumentParser()
    for k in ("client4", "server4", "client6", "server6", "iface", "gw_mac"):
        ap.add_argument("--" + k.replace("_", "-"), required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=int, default=20000)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    net = ev.Net(a)
    base = corpus(net)
    pool = {4: [p for f, p in base if f == 4], 6: [p for f, p in base if f == 6]}
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    src = s.getsockname()[4]
    dst = bytes.fromhex(a.gw_mac.replace(":", ""))
    eth = {4: dst + src + b"\x08\x00", 6: dst + src + b"\x86\xdd"}
    sent = {4: 0, 6: 0}
    t0 = time.monotonic()
    for n in range(a.count):
        fam, pkt = rng.choice(base)
        frame = eth[fam] + mutate(rng, fam, pkt, pool)
        try:
            s.send(frame)
        except OSError:
            # A frame the driver refuses (e.g. longer than the MTU) is not sent; count only what was.
            continue
        sent[fam] += 1
        if n % 200 == 199:
            ahead = (n + 1) / a.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    print(json.dumps({"sent": sent[4] + sent[6], "ipv4": sent[4], "ipv6": sent[6], "corpus": len(base), "seconds": round(time.monotonic() - t0, 2)}))


if __name__ == "__main__":
    main()
