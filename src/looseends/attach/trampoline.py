"""The machine code a borrowed thread runs: take the GIL as any C callback does, run the script in a
dictionary of its own, give the GIL back, and go home through the signal frame the attach left on the
thread's stack, unmapping its own pages on the way out.

The code, its parameter block and the script share one mapping (read and execute only; the attach
writes it through /proc/PID/mem). Everything the code reads is at an offset of `PARAMETERS`, which
this module also uses to pack the block: the assembly is generated from the same table, and
tests/test_attach_trampoline.py assembles it with `as` and compares the bytes with `CODE`, so the two
cannot drift apart.

The thread enters with every signal blocked and its stack pointer on the frame it will return
through; the code never writes to memory of the target's except that frame and the stack below it.
"""

from __future__ import annotations

import struct

from looseends.attach.frame import UC_RAX, UC_RIP, UC_SIGMASK

__all__ = ["ASSEMBLY", "CODE", "PARAMETERS", "PARAMETERS_AT", "SCRIPT_AT", "page"]

PARAMETERS_AT = 0x300  # the code is shorter than this
SCRIPT_AT = 0x400
# The parameter block, one 8-byte slot each, in this order (the names the assembly uses).
PARAMETERS = (
    "region",  # the mapping's address ...
    "size",  # ... and length, unmapped on the way out
    "syscall_ret",  # `syscall; ret` in the C library: the unmapping runs there, outside our pages
    "resume_rip",  # after the thread's own `syscall` instruction: where an interrupted call returns
    "mode",  # 0: the call resumes as is; 1: a handled signal makes it EINTR; 2: unless SA_RESTART
    "PyGILState_Check",
    "PyGILState_Ensure",
    "PyGILState_Release",
    "PyDict_New",
    "PyRun_StringFlags",
    "Py_DecRef",
    "PyErr_Clear",
)
SLOT = {name: PARAMETERS_AT + 8 * number for number, name in enumerate(PARAMETERS)}
SA_RESTART = 0x10000000
PY_FILE_INPUT = 257


_LABELS = "\n".join(f"p_{name.lower()}: .quad 0" for name in PARAMETERS)
ASSEMBLY = f"""
.intel_syntax noprefix
# Entered with rsp at the frame to return through (attach.frame: pretcode, then the ucontext).
entry:
    mov r12, rsp                        # the frame: kept in a register the C calls preserve
    lea rsp, [rsp - 64]
    and rsp, -16                        # the C calls' stack, below the frame
# madvise(region, size, MADV_DONTFORK): a child forked meanwhile inherits none of these pages.
    mov eax, 28
    mov rdi, [rip + p_region]
    mov rsi, [rip + p_size]
    mov edx, 10
    syscall
# A thread that already holds the GIL (a C extension blocking without releasing it) cannot take it
# again: it runs nothing.
    call [rip + p_pygilstate_check]
    test eax, eax
    jnz finish
    call [rip + p_pygilstate_ensure]
    mov r13d, eax                       # the GIL state, for the release
# globals = PyDict_New(); PyRun_StringFlags(script, Py_file_input, globals, globals, NULL): the script
# sees no module's namespace, __main__'s included; its own names go with the dictionary.
    call [rip + p_pydict_new]
    mov r14, rax
    test rax, rax
    jz release
    lea rdi, [rip + script]
    mov esi, {PY_FILE_INPUT}
    mov rdx, r14
    mov rcx, r14
    xor r8d, r8d
    call [rip + p_pyrun_stringflags]
    test rax, rax
    jz failed
    mov rdi, rax
    call [rip + p_py_decref]
    jmp ran
failed:                                 # the script catches its own errors; nothing is left set
    call [rip + p_pyerr_clear]
ran:
    mov rdi, r14
    call [rip + p_py_decref]
release:
    mov edi, r13d
    call [rip + p_pygilstate_release]
# Would the kernel have made the thread's call return EINTR? Yes when a signal with a handler is
# pending now and the call is of a kind it interrupts (mode 1), or (mode 2) the handler lacks
# SA_RESTART. Then the frame returns EINTR after the call instead of making it again, as the kernel
# would, and the handler runs as the frame unblocks it.
finish:
    cmp qword ptr [rip + p_mode], 0
    je leave
    sub rsp, 64                         # [rsp]: the pending set; [rsp + 16]: a struct sigaction
    mov eax, 127                        # rt_sigpending(&set, 8)
    mov rdi, rsp
    mov esi, 8
    syscall
    mov rbx, [rsp]
    mov rax, [r12 + {UC_SIGMASK}]        # signals the thread itself blocks stay pending: not ours to judge
    not rax
    and rbx, rax
next_signal:
    test rbx, rbx
    jz leave
    bsf rcx, rbx
    btr rbx, rcx
    lea rdi, [rcx + 1]                  # rt_sigaction(signal, NULL, &action, 8)
    mov eax, 13
    xor esi, esi
    lea rdx, [rsp + 16]
    mov r10d, 8
    syscall
    test rax, rax
    jnz next_signal
    cmp qword ptr [rsp + 16], 1         # SIG_DFL (0) or SIG_IGN (1): no handler runs
    jbe next_signal
    cmp qword ptr [rip + p_mode], 1
    je interrupted
    test qword ptr [rsp + 24], {SA_RESTART}
    jnz next_signal
interrupted:
    mov rax, [rip + p_resume_rip]
    mov [r12 + {UC_RIP}], rax
    mov qword ptr [r12 + {UC_RAX}], -4     # EINTR
# munmap(region, size) by `syscall; ret` in the C library, with rsp back on the frame: the `ret` lands
# on the frame's pretcode, the C library's signal return, which restores the thread.
leave:
    mov rsp, r12
    mov eax, 11
    mov rdi, [rip + p_region]
    mov rsi, [rip + p_size]
    jmp [rip + p_syscall_ret]
code_end:

.org {PARAMETERS_AT:#x}
{_LABELS}
.org {SCRIPT_AT:#x}
script:
"""
CODE = bytes.fromhex(
    "4989e4488d6424c04883e4f0b81c000000488b3de8020000488b35e9020000ba0a0000000f05ff15fc02000085c0755a"
    "ff15fa0200004189c5ff15010300004989c64885c0743a488d3db2030000be010100004c89f24c89f14531c0ff15e602"
    "00004885c0740b4889c7ff15e0020000eb06ff15e00200004c89f7ff15cf0200004489efff15ae02000048833d8e0200"
    "00000f84870000004883ec40b87f0000004889e7be080000000f05488b1c24498b84243001000048f7d04821c34885db"
    "745d480fbccb480fb3cb488d7901b80d00000031f6488d54241041ba080000000f054885c075d648837c24100176ce48"
    "833d2902000001740b48f74424180000001075b9488b050d02000049898424b000000049c7842498000000fcffffff4c"
    "89e4b80b000000488b3dd2010000488b35d3010000ff25d5010000"
)


def page(parameters: dict[str, int], script: bytes) -> bytes:
    """The mapping's contents: the code, the parameter block filled in, the script (NUL-terminated)."""
    if set(parameters) != set(PARAMETERS):
        raise ValueError(f"trampoline parameters differ: {sorted(set(parameters) ^ set(PARAMETERS))}")
    block = struct.pack(f"<{len(PARAMETERS)}Q", *(parameters[name] & ((1 << 64) - 1) for name in PARAMETERS))
    return CODE.ljust(PARAMETERS_AT, b"\0") + block.ljust(SCRIPT_AT - PARAMETERS_AT, b"\0") + script + b"\0"
