"""The memory helpers of a run of many years: large blocks stay mapped, so what a year frees goes back at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from boston_lake.lake.memory import _LIBC

# In a fresh interpreter: glibc's mmap threshold is process-wide, and the test must see it as a run starts.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from boston_lake.lake.memory import _LIBC, use_returnable_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    _LIBC.mallinfo2.restype = MallInfo2
    _LIBC.malloc.restype = ctypes.c_void_p
    _LIBC.free.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "returnable":
        use_returnable_memory()
    _LIBC.free(_LIBC.malloc(16 << 20))  # a year's large buffer, freed: glibc would raise its threshold to 16 MiB
    mapped = _LIBC.mallinfo2().hblks  # blocks mapped on their own, each handed back by its free
    block = _LIBC.malloc(8 << 20)
    print(_LIBC.mallinfo2().hblks - mapped)
    _LIBC.free(block)
    """
)


def _mapped_blocks(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(_LIBC is None or not hasattr(_LIBC, "mallinfo2"), reason="glibc 2.33+ only")
def test_a_large_block_after_a_larger_one_was_freed_is_still_mapped_on_its_own():
    assert _mapped_blocks("default") == 0  # glibc's own rule: the 8 MiB block comes from the heap, and stays
    assert _mapped_blocks("returnable") == 1
