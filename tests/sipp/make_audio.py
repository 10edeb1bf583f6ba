#!/usr/bin/env python3
"""Generate pcmu.wav / pcma.wav for sipp 3.6.1 `rtp_stream`.

sipp 3.6.1 does NOT parse WAV: rtp_stream reads the whole file and sends its
bytes verbatim, 160 bytes per 20 ms packet (PT 0 and PT 8), looping at EOF.
Any RIFF header would be sent as audio (sipp >= 3.7 skips a RIFF header).
So the files are headerless raw G.711: 8000 Hz, mono, 1 byte per sample,
no header, 1 s of a 440 Hz sine = 8000 bytes = exactly 50 packets.

Usage: make_audio.py [OUTDIR]   (default: current directory)
"""
import math
import os
import sys

RATE = 8000
SECONDS = 1
FREQ = 440.0
AMPLITUDE = 0.5  # of full scale (16-bit linear 32767)


def linear_to_ulaw(sample: int) -> int:
    """ITU-T G.711 mu-law (reference Sun g711.c, same as Python audioop),
    16-bit signed linear in, 8-bit code out."""
    pcm = sample >> 2  # 14-bit, arithmetic shift
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + 0x21
    seg = 0
    while seg < 8 and pcm > (0x40 << seg) - 1:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask


def linear_to_alaw(sample: int) -> int:
    """ITU-T G.711 A-law, 16-bit signed linear in, 8-bit code out."""
    sign = 0x80 if sample >= 0 else 0x00
    if sample < 0:
        sample = -sample - 1  # one's complement magnitude, as in G.711/G.191
    sample = min(sample, 32767) >> 3  # 13-bit magnitude
    if sample < 32:
        code = sample >> 1  # segment 0
    else:
        exponent = 1
        while sample >= (64 << (exponent - 1)) and exponent < 7:
            exponent += 1
        mantissa = (sample >> exponent) & 0x0F
        code = (exponent << 4) | mantissa
    return (sign | code) ^ 0x55


def tone() -> list:
    n = RATE * SECONDS
    return [int(round(AMPLITUDE * 32767 * math.sin(2 * math.pi * FREQ * i / RATE))) for i in range(n)]


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    pcm = tone()
    with open(os.path.join(out, "pcmu.wav"), "wb") as f:
        f.write(bytes(linear_to_ulaw(s) for s in pcm))
    with open(os.path.join(out, "pcma.wav"), "wb") as f:
        f.write(bytes(linear_to_alaw(s) for s in pcm))


if __name__ == "__main__":
    main()
