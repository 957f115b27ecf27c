"""Cycle cost of Thumb-2 instruction sequences on Cortex-M4 and (a conservative model of) Cortex-M7.

The instructions are the disassembly lines QEMU prints with ``-d in_asm`` (capstone syntax:
``ldr.w r3, [r2, #0xd88]``, ``smlad r0, r1, r2, r0``, ``movge.w r1, #0``);
:mod:`edgec.device.firmware.cycles` feeds it the instructions of every executed translation block.

Cortex-M4 ("cortex-m4-trm"), from the Arm Cortex-M4 Processor Technical Reference Manual r0p1
(Arm DDI 0439 / 100166), section 3.3.1 "Cortex-M4 instruction set summary" (Table 3-1) and
section 3.3.2 "Load/store timings", for a zero-wait-state memory system:

- data processing, saturation, packing, SIMD and *every* multiply including MLA/MLS, the long
  multiplies SMULL/UMULL/SMLAL/UMLAL/UMAAL and the DSP multiply-accumulates SMLAD/SMLALD/
  SMLAxy/SMMLA: 1 cycle; SDIV/UDIV: 2 to 12 (early termination on the operands; costed at 12);
- single loads LDR/LDRB/LDRH/LDRSB/LDRSH (and VLDR): 2 cycles, but "LDR [any] are pipelined when
  possible": a load or store right after a single load costs one cycle less unless its address
  uses the first load's destination (TRM examples: ``LDR R0,[R1]; LDR R1,[R2]`` 3 cycles;
  ``LDR R0,[R1,R5]; LDR R1,[R2]; LDR R2,[R3,#4]`` 4 cycles);
- ``STR Rx,[Ry,#imm]`` (immediate or writeback addressing) is always 1 cycle; a register-offset
  store is 2 (1 after a load) and nothing pipelines after it;
- "any load or store that generates an address dependent on the result of a preceding data
  processing operation stalls the pipeline for an additional cycle": +1;
- LDRD/STRD and LDM/STM/PUSH/POP/VLDM/VSTM/VPUSH/VPOP: 1 + N (N registers; a D register is two
  words), not pipelined with their neighbours; loading PC adds P;
- branches: 1 when not taken, 1 + P when taken (B, BL, BX, BLX, CBZ/CBNZ, and any write of PC);
  TBB/TBH 3 + P (section 3.3.2: two for the load, one for the add, then the refill). P, the pipeline refill, is "1 to 3 depending on the alignment and width of the
  target instruction": :data:`REFILL` = 2 for the estimate, 1 and 3 for its bounds;
- IT: 1 (the TRM lets it fold into a preceding 16-bit instruction for 0; not credited);
  conditional instructions that fail their condition still take their issue cycle (costed as
  executed);
- FPU: VMLA/VMLS/VFMA/VFMS/VNMLA/VNMLS 3, VDIV/VSQRT 14, VMOV of two core registers 2, else 1.
- Not modelled: wait states (flash at 120 MHz on real boards adds them: the ART/cache hides most),
  bus contention of PC-relative loads ("might add a cycle") and interrupts.

Cortex-M7 ("cortex-m7-single-issue"): Arm publishes no instruction timings for the M7. The model
is a stated *conservative* bound for code running from TCM or cache: every instruction one cycle
(no dual issue credited: the M7 can retire two per cycle), single loads and stores 1 (its load
pipeline accepts one per cycle), LDRD/STRD 1, LDM/STM/PUSH/POP 1 + ceil(N/2) (64-bit data path),
SDIV/UDIV 12, FPU divide/square root 14, taken branches 1 + :data:`M7_TAKEN_PENALTY` (the branch
predictor hides most; a fixed 1 stands for the mispredicted loop exits). Measured M7 timings
(quinapalus.com/cm7cycles.html) show most ALU/load pairs dual-issue, so real code runs faster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REFILL = 2  # P of the Cortex-M4 TRM, cycles to refill the pipeline after a taken branch
REFILL_BOUNDS = (1, 3)
M7_TAKEN_PENALTY = 1
DIV_CYCLES = 12
MODELS = {"cortex-m4": "cortex-m4-trm", "cortex-m7": "cortex-m7-single-issue"}

_CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
_REG_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "r13": "sp", "r14": "lr", "r15": "pc"}
_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh", "ldrt", "ldrbt", "ldrht",
          "ldrsbt", "ldrsht", "vldr"}
_STORES = {"str", "strb", "strh", "strex", "strexb", "strexh", "strt", "strbt", "strht", "vstr"}
_MULTI = {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "stm", "stmia", "stmea", "stmdb", "stmfd", "push", "pop",
          "vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"}
_BRANCHES = {"b", "bl", "blx", "bx", "cbz", "cbnz"}
_NO_DEST = {"cmp", "cmn", "tst", "teq", "it", "nop", "vcmp", "vcmpe", "dsb", "dmb", "isb", "cpsie", "cpsid",
            "msr", "wfi", "wfe", "sev", "bkpt", "svc", "pld", "pli", "yield"}
_FP_SLOW = {"vmla", "vmls", "vfma", "vfms", "vnmla", "vnmls", "vfnma", "vfnms"}
# Multiplies listed by name: several end in letters that read as a condition (smlAL, umaAL, mLS).
_MULTIPLIES = {"mul", "mla", "mls", "smull", "umull", "smlal", "umlal", "umaal", "smlad", "smladx", "smlsd",
               "smlald", "smlsld", "smuad", "smusd", "smmul", "smmulr", "smmla", "smmlar", "smmls", "smmlsr",
               "smlabb", "smlabt", "smlatb", "smlatt", "smulbb", "smulbt", "smultb", "smultt", "smlawb",
               "smlawt", "smulwb", "smulwt", "smlalbb", "smlalbt", "smlaltb", "smlaltt"}
# Data processing whose flag-setting form ends in letters that read as a condition (movS -> "vs", lslS -> "ls").
_ALU = {"mov", "mvn", "add", "sub", "rsb", "adc", "sbc", "and", "orr", "orn", "eor", "bic", "lsl", "lsr", "asr",
        "ror", "rrx", "neg"}
_KNOWN = (_LOADS | _STORES | _MULTI | _BRANCHES | _NO_DEST | _FP_SLOW | _MULTIPLIES | _ALU
          | {"ldrd", "strd", "tbb", "tbh", "sdiv", "udiv", "vdiv", "vsqrt", "vmov", "ite", "itt", "itee", "itet",
             "itte", "ittt", "iteee", "iteet", "itete", "itett", "ittee", "ittet", "ittte", "itttt"})


@dataclass(frozen=True)
class Insn:
    """One decoded instruction: its address, base mnemonic (no width, condition or S suffix) and
    operand text, plus what the timing rules need to know about it."""

    addr: int
    size: int
    op: str
    operands: str
    dest: tuple[str, ...]  # registers written (for the address-dependency stall)
    address_regs: tuple[str, ...]  # base and index registers of a load or store
    writes_pc: bool
    conditional_branch: bool
    words: int  # registers moved by LDM/STM/PUSH/POP/LDRD/STRD (D registers count two)
    register_offset: bool  # a load/store with a register offset


def _reg(name: str) -> str:
    name = name.strip().lower().lstrip("{").rstrip("}!").strip()
    return _REG_ALIASES.get(name, name)


def _split_operands(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_MEM = re.compile(r"\[([^\]]*)\]")
_LINE = re.compile(r"^0x([0-9a-f]+):\s+((?:[0-9a-f]{4}\s?){1,2})\s+(\S+)\s*(.*)$")


def decode(addr: int, size: int, mnemonic: str, operands: str) -> Insn:
    """Decode one instruction for the timing rules."""
    raw = mnemonic.lower().split(".")[0]
    op = _classify(raw)
    ops = _split_operands(operands)
    dest: tuple[str, ...] = ()
    address_regs: tuple[str, ...] = ()
    words = 0
    register_offset = False
    mem = _MEM.search(operands)
    if mem:
        regs = [_reg(r) for r in mem.group(1).split(",") if _reg(r) and not _reg(r).startswith(("#", "lsl"))]
        address_regs = tuple(r for r in regs if re.fullmatch(r"r\d+|sp|lr|pc", r))
        register_offset = len(address_regs) > 1
    if op in _MULTI:
        regs = re.findall(r"[a-z]+\d*", operands.split("{", 1)[-1]) if "{" in operands else []
        words = sum(2 if r.startswith("d") else 1 for r in regs)
        if op.startswith(("ldm", "pop", "vldm", "vpop")):
            dest = tuple(_reg(r) for r in regs)
    elif op in ("ldrd", "strd"):
        words = 2
        if op == "ldrd":
            dest = tuple(_reg(r) for r in ops[:2])
    elif op in ("smlal", "umlal", "smull", "umull", "umaal", "smlald", "smlsld", "smlalbb", "smlalbt",
                "smlaltb", "smlaltt"):
        dest = tuple(_reg(r) for r in ops[:2])
    elif op not in _STORES and op not in _NO_DEST and op not in _BRANCHES and ops and op not in ("tbb", "tbh"):
        dest = (_reg(ops[0]),)
    writes_pc = "pc" in dest and op not in _BRANCHES
    cond_branch = (op in ("cbz", "cbnz")) or (op == "b" and raw.startswith("b") and raw[1:3] in _CONDS)
    if op in ("bx", "blx", "bl") and raw[len(op):len(op) + 2] in _CONDS:
        cond_branch = True
    return Insn(addr, size, op, operands, dest, address_regs, writes_pc, cond_branch, words, register_offset)


def _classify(raw: str) -> str:
    """The base mnemonic: width, condition and flag-setting suffixes removed."""
    if raw.startswith("it") and set(raw[2:]) <= {"t", "e"}:
        return "it"
    if raw in _KNOWN:
        return raw
    if raw in ("bl", "blx", "bx"):
        return raw
    # branches: b<cond>, bx<cond>, bl<cond>
    for br in ("blx", "bx", "bl", "b"):
        if raw.startswith(br) and raw[len(br):] in _CONDS:
            return br
    # op{S}{cond}: try the flag-setting and condition suffixes off, longest known name first
    candidates = [raw[:-1]] if raw.endswith("s") else []
    if raw[-2:] in _CONDS:
        candidates += [raw[:-2], raw[:-3]] if raw[-3:-2] == "s" else [raw[:-2]]
    for c in candidates:
        if c in _KNOWN:
            return c
    # an ALU instruction not named above: every one costs the same, only the name differs
    return raw[:-2] if raw[-2:] in _CONDS and len(raw) > 3 else raw


def parse_line(line: str) -> Insn | None:
    """An instruction from one ``-d in_asm`` line (``0x00002a6c:  b091  sub sp, #0x44``), else None."""
    m = _LINE.match(line.strip())
    if not m:
        return None
    size = 2 * len(m.group(2).split())
    return decode(int(m.group(1), 16), size, m.group(3), m.group(4))


def _is_load(i: Insn) -> bool:
    return i.op in _LOADS


def _is_store(i: Insn) -> bool:
    return i.op in _STORES


def _is_alu(i: Insn) -> bool:
    return not (_is_load(i) or _is_store(i) or i.op in _MULTI or i.op in _BRANCHES
                or i.op in ("ldrd", "strd", "tbb", "tbh", "it"))


def insn_cost(i: Insn, prev: Insn | None, core: str) -> tuple[int, int]:
    """Cycles of ``i`` after ``prev`` (None: unknown), excluding the taken-branch refill: returns
    (cycles, refills) where refills counts the P terms (taken branches are charged by the caller,
    which knows where execution went; writes of PC other than branches are charged here)."""
    if core == "cortex-m7":
        return _m7_cost(i)
    refills = 1 if i.writes_pc else 0
    if _is_load(i) or _is_store(i):
        if _is_store(i):
            cycles = 2 if i.register_offset else 1
        else:
            cycles = 2
        if prev is not None:
            after_load = _is_load(prev) and not (set(prev.dest) & set(i.address_regs))
            if after_load and cycles > 1:
                cycles -= 1
            if _is_store(prev) and prev.register_offset:
                pass  # nothing pipelines after a register-offset store: no reduction
            if _is_alu(prev) and set(prev.dest) & set(i.address_regs):
                cycles += 1  # address generated by the previous data-processing instruction
        return cycles, refills
    if i.op in _MULTI or i.op in ("ldrd", "strd"):
        cycles = 1 + max(i.words, 1)
        if prev is not None and _is_alu(prev) and set(prev.dest) & set(i.address_regs):
            cycles += 1
        return cycles, refills
    if i.op in ("tbb", "tbh"):
        return 3, 1  # "at least two cycles for the load, one cycle for the add", then the refill
    if i.op in ("sdiv", "udiv"):
        return DIV_CYCLES, 0
    if i.op in ("vdiv", "vsqrt"):
        return 14, 0
    if i.op in _FP_SLOW:
        return 3, 0
    if i.op == "vmov" and len(_split_operands(i.operands)) >= 3:
        return 2, 0
    if i.op in ("dsb", "dmb", "isb"):
        return 1, 1 if i.op == "isb" else 0
    return 1, refills


def _m7_cost(i: Insn) -> tuple[int, int]:
    if i.op in _MULTI:
        return 1 + (max(i.words, 1) + 1) // 2, 1 if i.writes_pc else 0
    if i.op in ("sdiv", "udiv"):
        return DIV_CYCLES, 0
    if i.op in ("vdiv", "vsqrt"):
        return 14, 0
    if i.op in ("tbb", "tbh"):
        return 2, 1
    return 1, 1 if i.writes_pc else 0


def is_branch(i: Insn) -> bool:
    """True when ``i`` can change the flow (a branch or a write of PC)."""
    return i.op in _BRANCHES or i.op in ("tbb", "tbh") or i.writes_pc


def taken_penalty(core: str, refill: int = REFILL) -> int:
    """Extra cycles of a taken branch on ``core``: the refill P on the M4, a fixed penalty on the M7."""
    return M7_TAKEN_PENALTY if core == "cortex-m7" else refill


def block_cost(insns: list[Insn], prev: Insn | None, core: str) -> tuple[int, int]:
    """(cycles, refills) of a straight-line block entered after ``prev``, without the refill of a
    taken branch at its end (see :func:`insn_cost`)."""
    cycles = refills = 0
    for i in insns:
        c, r = insn_cost(i, prev, core)
        cycles += c
        refills += r
        prev = i
    return cycles, refills


def sequence_cycles(lines: list[str], core: str = "cortex-m4", *, taken: set[int] = frozenset(),
                    refill: int = REFILL) -> int:
    """Cycles of a straight sequence of disassembly lines (``"ldr r0, [r1]"`` or in_asm lines);
    branches at the addresses in ``taken`` (their index in ``lines`` when lines carry no address)
    are charged the taken refill. For tests and the validation table."""
    insns = []
    for n, line in enumerate(lines):
        parsed = parse_line(line)
        if parsed is None:
            mnemonic, _, operands = line.strip().partition(" ")
            parsed = decode(n, 4, mnemonic, operands.strip())
        insns.append(parsed)
    cycles, refills = block_cost(insns, None, core)
    extra = sum(1 for i in insns if is_branch(i) and i.addr in taken and not i.writes_pc)
    penalty = taken_penalty(core, refill)
    return cycles + (refills + extra) * (refill if core != "cortex-m7" else penalty)


def model_name(core: str) -> str:
    """The name of the cycle model for ``core``; ValueError when there is none."""
    if core not in MODELS:
        raise ValueError(f"no cycle model for {core} (have: {', '.join(MODELS)})")
    return MODELS[core]
