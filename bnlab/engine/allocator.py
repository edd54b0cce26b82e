"""Keep freed memory in the process, so that a stack's big activations are not page-faulted
in afresh at every step.

glibc's malloc serves every block above 32 MiB with its own `mmap` and returns it to the
kernel on `free`. A stack of K conv members has activations of K x (one model's), often
above that size (optstudy-convmlp at K=5: 64 MB per layer output), so every step would map
fresh pages and fault each one in (zero-filled by the kernel). One model's activations stay
under the threshold, which is why a plain loop does not see it. `mallopt(M_MMAP_MAX, 0)`
serves big blocks from the heap too, and a large `M_TRIM_THRESHOLD` keeps the freed heap
for the next step. The process then holds its peak memory until it exits, which is what a
training process needs anyway. Values are unchanged: this only decides where tensors live.
With it (and flatten's channels-last gradient), `benchmarks/engine.py` measured the steps
of optstudy-convmlp at 1.04x the seed-style loop's, against 0.69x before (README).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # <malloc.h>
_KEEP_BYTES = 1 << 30  # free heap kept before glibc trims it


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks (once per process); False where there is no
    glibc (macOS, musl, Windows), which then keeps its default behaviour."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, TypeError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
