"""Signal frames (Linux x86-64 `struct rt_sigframe`), built by hand so that a borrowed thread always
has a way back.

`rt_sigreturn` is the one system call that sets every register of a thread at once: the general ones,
the vector state (from the frame's xsave area), the signal mask, and not its alternate stack when the
frame says nothing valid about it. A thread whose stack holds a frame with its own registers, and
whose next instructions lead to `rt_sigreturn` on it, gets back to exactly where it was whatever happens
to the process that put it there. The attach builds two: one that unmaps its pages if it never gets to
use them, and the thread's own state (see attach.borrowed_thread).
"""

from __future__ import annotations

import struct

from looseends.attach.ptrace import Registers

__all__ = [
    "FRAME_SIZE",
    "PRETCODE",
    "UC_RAX",
    "UC_RIP",
    "UC_SIGMASK",
    "fpstate",
    "frame",
]

# struct rt_sigframe { char *pretcode; struct ucontext uc; ... }: the kernel reads the ucontext at
# the stack pointer the signal-return sequence runs with, which is just past pretcode.
PRETCODE = 0
UC_FLAGS, UC_LINK, UC_STACK, UC_MCONTEXT, UC_SIGMASK = 8, 16, 24, 48, 304  # from the frame's start
FRAME_SIZE = 320  # pretcode (8), ucontext (304), rounded up to 16
# struct sigcontext (64-bit): 18 words, then cs/gs/fs/ss (2 bytes each), err, trapno, oldmask, cr2,
# the fpstate pointer, 8 reserved words.
SIGCONTEXT = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags",
)  # fmt: skip
UC_RAX = UC_MCONTEXT + 8 * SIGCONTEXT.index("rax")
UC_RIP = UC_MCONTEXT + 8 * SIGCONTEXT.index("rip")
SC_SEGMENTS = 8 * len(SIGCONTEXT)
SC_FPSTATE = 184
SS_INVALID = 3  # SS_ONSTACK | SS_DISABLE: rejected, so rt_sigreturn leaves the alternate stack alone
# The xsave area in a signal frame: the kernel's software bytes at 464 of the legacy area, and a
# second magic number right after the state.
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
SW_BYTES = 464
XSTATE_BV = 512  # the header's bitmap of the components present
LEGACY_END = 576  # legacy area (512) and header (64): the least a frame's xsave area holds
# Where each component lies in the standard (non-compacted) xsave format: the same on every x86-64
# CPU that has it (AVX, MPX, AVX-512's three parts, PKRU, AMX's two).
COMPONENTS = {2: (576, 256), 3: (960, 64), 4: (1024, 64), 5: (1088, 64), 6: (1152, 512), 7: (1664, 1024),
              9: (2688, 8), 17: (2752, 64), 18: (2816, 8192)}  # fmt: skip
KNOWN = sum(1 << bit for bit in COMPONENTS)


def fpstate(xstate: bytes) -> bytes:
    """The thread's vector state (PTRACE_GETREGSET NT_X86_XSTATE) as a signal frame's xsave area.

    Its size is cut to the last component the thread has in use, which the kernel accepts whatever size
    it allows this process (AMX's 8 KiB only for one that asked for AMX). A frame the kernel does not
    accept is restored as x87 and SSE state only, which is still all a thread waiting in a system call
    has live: the vector registers beyond are the caller's to save across the C library's call."""
    present = int.from_bytes(xstate[XSTATE_BV : XSTATE_BV + 8], "little") & (KNOWN | 3)
    size = max(
        [LEGACY_END] + [offset + length for bit, (offset, length) in COMPONENTS.items() if present >> bit & 1]
    )
    size = min(size, len(xstate))
    area = bytearray(xstate[:size])
    features = present | 3  # x87 and SSE always; a component not known here is left to its init state
    struct.pack_into("<IIQI", area, SW_BYTES, FP_XSTATE_MAGIC1, size + 4, features, size)
    return bytes(area) + struct.pack("<I", FP_XSTATE_MAGIC2)


def frame(regs: Registers, *, mask: int, fp_address: int, pretcode: int) -> bytes:
    """A signal frame that resumes `regs` with signal mask `mask`, returned into through `pretcode`."""
    out = bytearray(FRAME_SIZE)
    struct.pack_into("<Q", out, PRETCODE, pretcode)
    struct.pack_into("<QQ", out, UC_FLAGS, 0, 0)
    struct.pack_into("<QiiQ", out, UC_STACK, 0, SS_INVALID, 0, 0)
    struct.pack_into(f"<{len(SIGCONTEXT)}Q", out, UC_MCONTEXT, *(getattr(regs, name) for name in SIGCONTEXT))
    struct.pack_into("<HHHH", out, UC_MCONTEXT + SC_SEGMENTS, regs.cs, 0, 0, regs.ss)
    struct.pack_into("<Q", out, UC_MCONTEXT + SC_FPSTATE, fp_address)
    struct.pack_into("<Q", out, UC_SIGMASK, mask)
    return bytes(out)
