#!/usr/bin/env python3
"""Cloister enclave layout v1, written from docs/enclave-layout.md alone.

An independent implementation of the MRENCLAVE computation that the Go
package libs/sgx implements; its output is the expected values of
TestLayoutKnownAnswers in libs/sgx/measure_test.go. Regenerate them with

    python3 libs/sgx/testdata/layout_v1.py

from the repository root and paste the printed table into the test.
Only the standard library is used.
"""

import hashlib
import struct

P = 4096
MiB = 1 << 20
THREAD_AREA = 69  # 1 guard + 64 stack + 1 TCS + 2 SSA + 1 TLS

PT_TCS, PT_REG = 1, 2
R, W, X = 1, 2, 4


def ceil_div(a, b):
    return -(-a // b)


def secinfo(page_type, perms):
    return page_type << 8 | perms


def ecreate(ssaframesize, size):
    rec = b"ECREATE\0" + struct.pack("<IQ", ssaframesize, size) + bytes(44)
    assert len(rec) == 64
    return rec


def eadd(offset, flags):
    rec = b"EADD\0\0\0\0" + struct.pack("<QQ", offset, flags) + bytes(40)
    assert len(rec) == 64
    return rec


def eextend(offset, chunk):
    assert len(chunk) == 256
    return b"EEXTEND\0" + struct.pack("<Q", offset) + bytes(48) + chunk


def tcs(t):
    """The TCS of the thread area at page t (the TCS itself is page t + 65)."""
    ossa = (t + 66) * P
    tls = (t + 68) * P
    head = struct.pack(
        "<QQQIIQQQQII",
        0,  # STAGE
        0,  # FLAGS
        ossa,  # OSSA
        0,  # CSSA
        2,  # NSSA
        0,  # OENTRY
        0,  # AEP
        tls,  # OFSBASE
        tls,  # OGSBASE
        0xFFF,  # FSLIMIT
        0xFFF,  # GSLIMIT
    )
    assert len(head) == 72
    return head + bytes(P - 72)


def mrenclave(launcher, manifest, memory_size, threads):
    """Returns (mrenclave hex, bytes hashed) or raises ValueError."""
    if len(launcher) == 0:
        raise ValueError("launcher")
    if not 1 <= threads <= 256:
        raise ValueError("threads")
    if memory_size % P or memory_size > 64 << 30:
        raise ValueError("memory_size")
    L = ceil_div(len(launcher), P)
    M = ceil_div(8 + len(manifest), P)
    H = L + M + THREAD_AREA * threads
    if memory_size < H * P + MiB:
        raise ValueError("memory_size")

    size = 1
    while size < memory_size:
        size *= 2

    h = hashlib.sha256()
    n = 0

    def put(b):
        nonlocal n
        h.update(b)
        n += len(b)

    def page(number, flags, contents=None):
        # contents None: EADD only; else the page is measured.
        offset = number * P
        put(eadd(offset, flags))
        if contents is None:
            return
        contents = contents + bytes(P - len(contents))
        for k in range(16):
            put(eextend(offset + 256 * k, contents[256 * k : 256 * (k + 1)]))

    put(ecreate(1, size))
    padded = launcher + bytes(L * P - len(launcher))
    for p in range(L):
        page(p, secinfo(PT_REG, R | X), padded[p * P : (p + 1) * P])
    m = struct.pack("<Q", len(manifest)) + manifest
    m += bytes(M * P - len(m))
    for p in range(M):
        page(L + p, secinfo(PT_REG, R), m[p * P : (p + 1) * P])
    for i in range(threads):
        t = L + M + THREAD_AREA * i
        # t: guard, not added
        for s in range(t + 1, t + 65):
            page(s, secinfo(PT_REG, R | W))
        page(t + 65, secinfo(PT_TCS, 0), tcs(t))
        page(t + 66, secinfo(PT_REG, R | W), b"")
        page(t + 67, secinfo(PT_REG, R | W), b"")
        page(t + 68, secinfo(PT_REG, R | W), b"")
    for p in range(H, memory_size // P):
        page(p, secinfo(PT_REG, R | W))
    return h.hexdigest(), n


def pattern(n, seed):
    """The test inputs: byte i is (i*31 + seed) mod 251 (period 251, not 256)."""
    return bytes((i * 31 + seed) % 251 for i in range(n))


# The worked example of docs/enclave-layout.md.
WORKED = (b"cloister launcher", b'{"v":1}', 2 * MiB, 1)

# name, (launcher length, seed), (manifest length, seed), memory_size, threads
CASES = [
    ("tiny launcher, 2 MiB", (1, 7), (0, 0), 2 * MiB, 1),
    ("launcher 5000 B, 3 MiB", (5000, 1), (100, 2), 3 * MiB, 1),
    ("one page each, 4 threads", (4096, 3), (4088, 4), 4 * MiB, 4),
    ("manifest over a page, 4 threads", (12289, 5), (4089, 6), 8 * MiB - P, 4),
    ("256 threads, 80 MiB", (1, 7), (0, 0), 80 * MiB, 256),
    ("launcher 1 MiB + 1, 1 GiB", (MiB + 1, 8), (3000, 9), 1 << 30, 2),
]


def main():
    digest, n = mrenclave(*WORKED)
    print(f"worked example: {digest} ({n} bytes hashed)")
    for name, (ln, ls), (mn, ms), memory_size, threads in CASES:
        digest, n = mrenclave(pattern(ln, ls), pattern(mn, ms), memory_size, threads)
        print(f'{{"{name}", {ln}, {ls}, {mn}, {ms}, {memory_size}, {threads}, "{digest}", {n}}},')

if __name__ == "__main__":
    main()
