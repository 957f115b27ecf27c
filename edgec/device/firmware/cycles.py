"""Estimated core cycles of one inference: QEMU's execution log costed with :mod:`.cycle_model`.

Debian's QEMU 7.2 ships no TCG plugins, so the instruction stream comes from its logs:
``-d in_asm,exec,nochain``. ``in_asm`` prints the guest instructions of every translation block
(TB) when it is translated; ``exec`` prints one ``Trace`` line (host code pointer, guest PC,
symbol) before every execution of a TB, and ``nochain`` makes that every execution, not only the
first of a chain. A TB's instructions are those of the ``IN:`` block printed just before its first
``Trace`` line; later executions are matched by the host pointer (re-keyed when QEMU translates
again at the same pointer). The traced run goes without ``-icount``: under it a TB that the
instruction budget stops before its first instruction is logged and then run again. Counting runs from the first TB at ``edgec_invoke``'s entry to the
first TB of ``counter_stop``: the inference only, not the serial protocol around it. Interrupt
handlers (``*_Handler``: without -icount, SysTick wraps on host time) are left out, and the block
after one is paired with the block before it; a TB that an interrupt request stopped before its
first instruction (QEMU logs "Stopped execution of TB chain before ...") is uncounted. So the
estimate is the same run after run.

Executions are counted per (previous TB, TB) pair, which gives the cost model what it needs
without keeping the stream: the previous TB's last instruction (load pipelining and the
address-dependency stall across the boundary), and whether a branch ending the previous TB was
taken (the next TB does not start at its fall-through address). The traced instruction count is
reported beside the estimate and matches the ``-icount`` counter of the verification run.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from edgec.core.errors import ToolchainError
from edgec.device.firmware import cycle_model
from edgec.device.firmware.boards import board
from edgec.device.firmware.cycle_model import Insn
from edgec.device.firmware.protocol import Device
from edgec.device.firmware.qemu import QemuSession

log = logging.getLogger(__name__)

NM = "arm-none-eabi-nm"
START_SYMBOL = "edgec_invoke"
STOP_SYMBOL = "counter_stop"
_TRACE = re.compile(r"^Trace \d+: (0x[0-9a-f]+) \[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\] ?(\S*)")


def symbol_address(elf: Path, name: str) -> int:
    """The address of function ``name`` in ``elf`` (Thumb bit cleared), from arm-none-eabi-nm."""
    nm = shutil.which(NM)
    if nm is None:
        raise ToolchainError(f"{NM} not found; install it with `make toolchains`", stage="cycles")
    out = subprocess.run([nm, str(elf)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == name:
            return int(fields[0], 16) & ~1
    raise ToolchainError(f"{elf} has no symbol {name}", stage="cycles")


def symbol_size(elf: Path, name: str) -> int | None:
    """The size in bytes of data symbol ``name`` in ``elf`` (arm-none-eabi-nm -S), None when absent."""
    out = subprocess.run([shutil.which(NM) or NM, "-S", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[3] == name:
            return int(fields[1], 16)
    return None


class TraceCounts:
    """Executed TBs of one inference: their instructions and the (previous, next) pair counts."""

    def __init__(self) -> None:
        self.blocks: dict[int, list[Insn]] = {}  # TB id -> instructions
        self.symbol: dict[int, str] = {}  # TB id -> function name from the log
        self.pairs: Counter = Counter()  # (previous TB id or -1, TB id) -> executions
        self.unknown = 0  # executions of TBs whose instructions the log did not show

    @property
    def instructions(self) -> int:
        """Guest instructions executed in the counted span."""
        return sum(n * len(self.blocks[cur]) for (_, cur), n in self.pairs.items())


def parse_log(lines, start_pc: int, stop_pc: int, *, skip: int = 0) -> TraceCounts:
    """Count the TB executions between the first TB at ``start_pc`` and the next at ``stop_pc``
    in a ``-d in_asm,exec,nochain`` log (an iterable of lines), after ``skip`` such windows."""
    counts = TraceCounts()
    skipping = False
    by_ptr: dict[str, int] = {}
    pending: list[Insn] | None = None
    collecting: list[Insn] | None = None
    counting = False
    prev = -1
    last = None  # (host pointer, pair) of the execution counted last
    for line in lines:
        if line.startswith("Trace"):
            m = _TRACE.match(line)
            if not m:
                continue
            ptr, pc = m.group(1), int(m.group(2), 16)
            if pending is not None and pending and pending[0].addr == pc:
                tb = len(counts.blocks)
                counts.blocks[tb] = pending
                counts.symbol[tb] = m.group(3)
                by_ptr[ptr] = tb
                pending = None
            if not counting:
                if skipping:  # an inference before the one asked for (the boot self-check's)
                    skipping = pc != stop_pc
                    continue
                if pc != start_pc:
                    continue
                if skip:
                    skip -= 1
                    skipping = True
                    continue
                counting = True
            elif pc == stop_pc:
                break
            if m.group(3).endswith("_Handler"):
                continue  # an interrupt (SysTick's wrap count): not the inference, and host-timed
            tb = by_ptr.get(ptr)
            if tb is None or counts.blocks[tb][0].addr != pc:
                counts.unknown += 1
                prev = -1
                continue
            counts.pairs[(prev, tb)] += 1
            last = (ptr, (prev, tb))
            prev = tb
        elif line.startswith("Stopped execution of TB chain before "):
            # An exit request (an interrupt) stopped the TB just logged before its first instruction:
            # it runs again later and is logged again, so this execution did not happen.
            if counting and last is not None and line.split()[6] == last[0]:
                pair = last[1]
                counts.pairs[pair] -= 1
                if not counts.pairs[pair]:
                    del counts.pairs[pair]
                prev, last = pair[0], None
        elif line.startswith("IN:"):
            collecting = []
        elif collecting is not None:
            if line.startswith("0x"):
                insn = cycle_model.parse_line(line)
                if insn is not None:
                    collecting.append(insn)
            elif not line.strip():
                pending, collecting = collecting, None
    if not counting:
        raise ToolchainError(f"the execution log never reached {START_SYMBOL} at {start_pc:#x}", stage="cycles")
    return counts


def estimate(counts: TraceCounts, core: str) -> dict:
    """Cycles of the counted span on ``core`` (cortex-m4 or cortex-m7); on the M4 also the bounds
    with the pipeline refill P at 1 and 3, and the cycles of each function, most first."""
    model = cycle_model.model_name(core)
    refills_list = cycle_model.REFILL_BOUNDS if core == "cortex-m4" else ()
    base = refills = 0
    per_symbol: Counter = Counter()
    blocks = counts.blocks
    for (prev, cur), n in counts.pairs.items():
        last = blocks[prev][-1] if prev >= 0 else None
        c, r = cycle_model.block_cost(blocks[cur], last, core)
        if last is not None and cycle_model.is_branch(last) and not last.writes_pc:
            r += int(blocks[cur][0].addr != last.addr + last.size)  # taken: execution did not fall through
        base += n * c
        refills += n * r
        per_symbol[counts.symbol[cur]] += n * (c + r * cycle_model.taken_penalty(core))
    penalty = cycle_model.taken_penalty(core)
    result = {"cycles": base + refills * penalty, "instructions": counts.instructions,
              "taken_branches": refills, "cycle_model": {"name": model, "core": core},
              "functions": dict(per_symbol.most_common())}
    if refills_list:
        result["cycles_bounds"] = [base + refills * p for p in refills_list]
        result["cycle_model"]["refill_cycles"] = penalty
    if counts.unknown:
        log.warning("%d TB executions without their instructions in the log: left out of the estimate",
                    counts.unknown)
        result["untraced_blocks"] = counts.unknown
    return result


def trace_inference(elf: Path, machine: str, sample: bytes, *, timeout: float = 600.0) -> TraceCounts:
    """Run one inference of ``sample`` on firmware ``elf`` under QEMU with the execution log on,
    and count its TBs."""
    start, stop = symbol_address(elf, START_SYMBOL), symbol_address(elf, STOP_SYMBOL)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "exec.log"
        args = ("-d", "in_asm,exec,nochain", "-D", str(path))
        with QemuSession(elf, machine, extra_args=args, icount_shift=None) as session, Device(session.url, timeout=timeout) as dev:
            info = dev.info()
            dev.infer(sample)
        # The boot self-check's inferences (edgec_samples.c) come first: skip them.
        bundled = (symbol_size(elf, "edgec_sample_outputs") or 0) // max(1, info.output_bytes)
        with open(path, errors="replace") as f:
            return parse_log(f, start, stop, skip=bundled)


def inference_cycles(elf: Path, machine: str, sample: bytes, *, timeout: float = 600.0) -> dict | None:
    """Estimated cycles of one inference of ``sample`` on the core of QEMU ``machine``, or None
    when there is no cycle model for that core (see :data:`cycle_model.MODELS`)."""
    core = board(machine).core
    if core not in cycle_model.MODELS:
        return None
    return estimate(trace_inference(elf, machine, sample, timeout=timeout), core)


def cycle_fields(estimate_: dict | None, *, macs: int | None, instructions: float, clock_hz: int | None) -> dict:
    """The ``verify.json`` / bench keys: instructions_per_mac, cycles_per_inference, cycles_per_mac,
    ms_at_clock and cycle_model (None where unknown)."""
    per_mac = (lambda v: round(v / macs, 3) if macs else None)
    fields = {"instructions_per_mac": per_mac(instructions), "cycles_per_inference": None,
              "cycles_per_mac": None, "ms_at_clock": None, "cycle_model": None}
    if estimate_ is None:
        return fields
    cycles = estimate_["cycles"]
    fields.update(cycles_per_inference=cycles, cycles_per_mac=per_mac(cycles),
                  ms_at_clock=round(cycles * 1000 / clock_hz, 3) if clock_hz else None,
                  cycle_model={**estimate_["cycle_model"], "clock_hz": clock_hz,
                               "traced_instructions": estimate_["instructions"]})
    if "cycles_bounds" in estimate_:
        fields["cycle_model"]["cycles_bounds"] = estimate_["cycles_bounds"]
    return fields
