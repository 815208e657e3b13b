#!/usr/bin/env python3
"""Print N unicast MAC addresses that all land in one slot of a MAC table hashed as the first
version of snoopswitch hashed it: key = VLAN << 48 | MAC, slot = (key * 0x9E3779B97F4A7C15
mod 2^64) >> (64 - log2(capacity)), for every capacity up to 2^15 slots (8,192 addresses
grow the table to 32,768).

A hostile host that knows the hash can send frames from such addresses: each one learned
makes the table's probe sequence longer, until every lookup near that slot walks thousands
of entries. snoopswitch now hashes with a random seed per table, which this script cannot
know; tests and scripts/bench.sh use these addresses to show that the attack no longer bites.

    scripts/colliding-macs.py [N] [VLAN]     (defaults: 8192, 1)

How: the keys K0 + x (x < 2^40) whose product lands in one window of 2^49 are the points of
the lattice {(x, x*C mod 2^64)} inside a box; a reduced basis of the lattice walks them.
"""

import sys
from fractions import Fraction

C = 0x9E3779B97F4A7C15
M = 1 << 64
TOP_BITS = 15                  # slots of a 32,768-entry table; smaller tables use fewer bits
WINDOW = 1 << (64 - TOP_BITS)
X_BITS = 40                    # the free low bits of the MAC; the first octet is 0x02 (local, unicast)
SCALE = 1 << (64 - TOP_BITS - X_BITS)   # makes the box square


def reduce(u, v):
    """Lagrange-Gauss reduction of a 2-D lattice basis."""
    def dot(a, b):
        return a[0] * b[0] + a[1] * b[1]
    if dot(u, u) > dot(v, v):
        u, v = v, u
    while True:
        m = round(Fraction(dot(u, v), dot(u, u)))
        v = (v[0] - m * u[0], v[1] - m * u[1])
        if dot(v, v) >= dot(u, u):
            return u, v
        u, v = v, u


def colliding(n, vlan):
    k0 = vlan << 48 | 0x02 << 40
    p0 = k0 * C % M
    lo = (p0 // WINDOW) * WINDOW - p0 + WINDOW // 2  # a window of y = x*C offsets, then its middle
    # Lattice of (x * SCALE, y) with y ≡ x*C (mod 2^64).
    u, v = reduce((SCALE, C), (0, M))
    # Babai rounding: the lattice point nearest the middle of the box.
    tx, ty = (1 << (X_BITS - 1)) * SCALE, lo
    det = u[0] * v[1] - u[1] * v[0]
    a = round(Fraction(tx * v[1] - ty * v[0], det))
    b = round(Fraction(u[0] * ty - u[1] * tx, det))
    cx, cy = a * u[0] + b * v[0], a * u[1] + b * v[1]
    found = []
    r = 1
    seen = set()
    while len(found) < n and r < 4096:
        for i in range(-r, r + 1):
            for j in range(-r, r + 1):
                if (i, j) in seen:
                    continue
                seen.add((i, j))
                sx, sy = cx + i * u[0] + j * v[0], cy + i * u[1] + j * v[1]
                if sx % SCALE:
                    continue
                x = sx // SCALE
                if not 0 <= x < 1 << X_BITS:
                    continue
                key = k0 | x
                if (key * C % M) >> (64 - TOP_BITS) != (p0 + lo) % M >> (64 - TOP_BITS):
                    continue
                found.append(x)
        r *= 2
    if len(found) < n:
        sys.exit(f"colliding-macs: found only {len(found)} addresses")
    slot = ((k0 | found[0]) * C % M) >> (64 - TOP_BITS)
    assert all(((k0 | x) * C % M) >> (64 - TOP_BITS) == slot for x in found[:n])
    return [0x02 << 40 | x for x in sorted(found[:n])]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    vlan = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for mac in colliding(n, vlan):
        print(":".join(f"{mac >> s & 0xff:02x}" for s in range(40, -8, -8)))


if __name__ == "__main__":
    main()
