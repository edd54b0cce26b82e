"""The engine keeps freed memory in the process (glibc): big activations are reused, not
page-faulted in again at every step."""

import ctypes
import ctypes.util
import platform

import pytest

from bnlab.engine.allocator import keep_freed_memory


def _glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's")
def test_big_blocks_are_kept_after_free():
    assert keep_freed_memory() is True
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = 96 * 2**20  # above glibc's largest mmap threshold (32 MiB)
    first = libc.malloc(size)
    libc.free(first)
    second = libc.malloc(size)
    libc.free(second)
    # served from the heap and kept there: the same block comes back (an mmap'ed block is
    # unmapped on free, and glibc's defaults would mmap a block this size)
    assert first == second
    assert _in_heap(first)


def _in_heap(address: int) -> bool:
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith("[heap]"):
                lo, hi = (int(a, 16) for a in line.split()[0].split("-"))
                if lo <= address < hi:
                    return True
    return False
