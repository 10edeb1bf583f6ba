#!/usr/bin/env python3
"""Tiny RTP sink for run.sh: bind 127.0.0.1:PORT, collect packets for SECONDS
(or until idle for IDLE seconds after the first packet), print a JSON summary.

usage: rtp_listen.py PORT SECONDS [IDLE] > summary.json
"""
import json
import socket
import sys
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
idle = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", port))
s.settimeout(0.05)
print("listening", file=sys.stderr, flush=True)

pts, sizes, ssrcs, srcs = {}, {}, {}, {}
first = last = None
per_ssrc = {}  # ssrc -> [times]
first_payload = {}
deadline = time.time() + seconds
while time.time() < deadline:
    if idle and last is not None and time.time() - last > idle:
        break
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    now = time.time()
    if len(data) < 12 or data[0] >> 6 != 2:
        continue
    pt = data[1] & 0x7F
    ssrc = int.from_bytes(data[8:12], "big")
    payload = data[12:]
    pts[pt] = pts.get(pt, 0) + 1
    sizes[len(payload)] = sizes.get(len(payload), 0) + 1
    srcs["%s:%d" % addr] = srcs.get("%s:%d" % addr, 0) + 1
    per_ssrc.setdefault(ssrc, []).append(now)
    first_payload.setdefault(ssrc, payload.hex())
    first = first if first is not None else now
    last = now

gaps = []
for times in per_ssrc.values():
    gaps += [b - a for a, b in zip(times, times[1:])]
gaps.sort()
print(json.dumps({
    "packets": sum(pts.values()),
    "pt": {str(k): v for k, v in pts.items()},
    "payload_sizes": {str(k): v for k, v in sizes.items()},
    "streams": len(per_ssrc),
    "sources": srcs,
    "first": first,
    "last": last,
    "gap_median_ms": round(gaps[len(gaps) // 2] * 1000, 2) if gaps else None,
    "gap_p95_ms": round(gaps[int(len(gaps) * 0.95)] * 1000, 2) if gaps else None,
    "first_payloads": sorted(set(first_payload.values())),
}))
