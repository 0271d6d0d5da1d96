"""The v3 control blocks against the ISA and the timing rules (Amaranth simulator, seeded stimulus).

Decoder == `bebert.isa.decode` + `check_config`; fetch dispatches into four queues in program
order; the 12 token counters add up the pops and pushes of four stages; the stage issuer
issues, pops, pushes and holds as docs/MACHINE_V3.md says; the LOAD stage moves entries at the
documented cycles; the control path finishes when it should.
"""

import gc
import random
from pathlib import Path
import warnings

import numpy as np
import pytest
from amaranth.sim import Simulator

from bebert.config import AccelConfig
from bebert.isa import (COUNTER_INDEX, COUNTERS, FIELDS, N_STAGES, POP_LSB, PUSH_LSB, TOKEN_BITS, IsaError, Op,
                        STAGE_OF, Stage, check_config, decode, encode, gemm, halt, load, post, postcfg, sync, vec)
from bebert.vector import KERNELS, VOTE_EXACT, VOTE_MAX_MEMBERS, VecFn
from bebert.hw.buffer import Buffer
from bebert.hw.decoder import InstructionDecoder
from bebert.hw.fetch import ErrorCode, FetchUnit
from bebert.hw.issue import StageIssuer
from bebert.hw.load_dma import LoadStage
from bebert.hw.token import TokenCounters

UNIT = AccelConfig(name="unit", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                   pbuf_bytes=1024, dram_bytes_per_cycle=8, dram_latency_cycles=3, queue_depth=4, vec_lanes=4,
                   vec_row_elems=64)
# A machine built for some activation widths only, with a narrow array (check_config's rules).
NARROW = UNIT.replace(name="narrow", pe_rows=2, pe_cols=8, act_bits=(1, 3, 8))


def run(dut, bench, *, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# -- decoder ------------------------------------------------------------------------------------
_EDGES = {  # per field: values around the legality boundaries (None: any value of the field)
    "buf": range(5), "n": (0, 1, None), "bits": range(10), "wbits": range(10), "k": (0, 1, None),
    "mode": (0, 1), "wsigned": (0, 1), "fmt": range(4), "elem": range(4), "obits": range(18),
    "group": (0, 1, 2, 3, 4, 6, 8, 64, 128, 255), "pm1": (0, 1), "cols": range(10), "rows": range(10),
    "pos": (0, 1, 7, 8, 31, 32, 33, 255), "stage": range(4), "fn": [0, 7, 12, 255] + [int(f) for f in VecFn] * 4,
    "aux": (0, 1, 2, 16, 17, None),
    "io": (0, 1, 2, 3, 5, 0x0D, 0x11, 0x15, 0x40, 0x41, 0x43, 0x51, 0x80, 0x81, None),
}
_OPCODES = [0x00, 0x02, 0x07, 0x0E, 0x11, 0xFF] + [int(o) for o in Op] * 4


def near_legal_word(rng: random.Random) -> int:
    """A word with a real opcode most of the time, operands near their legality boundaries,
    token masks that are empty, random, or random without the own stage's bit."""
    opcode = rng.choice(_OPCODES)
    w = rng.getrandbits(128) & ~0xFFFF | opcode
    op = Op(opcode) if opcode in Op._value2member_map_ else None
    for name, (lsb, width) in (FIELDS[op].items() if op is not None else ()):
        if rng.random() < 0.8 and name in _EDGES:
            v = rng.choice(list(_EDGES[name]))
            if v is not None:
                w = (w & ~(((1 << width) - 1) << lsb)) | (v % (1 << width)) << lsb
    r = rng.random()
    if r < 0.4:
        masks = 0
    elif r < 0.7 or op is None:
        masks = rng.getrandbits(8)
    else:
        own = 0xF if op == Op.HALT else 1 << (w >> 16 & 3 if op == Op.SYNC else int(STAGE_OF[op]))
        masks = rng.getrandbits(8) & ~(own | own << 4)
    return w | masks << POP_LSB


def expected_decode(w: int, config: AccelConfig) -> tuple[int, int, int]:
    """(illegal, halt, queue one-hot) as `bebert.isa` says for `config`."""
    try:
        ins = decode(w)
    except IsaError:
        return 1, 0, 0
    if check_config(ins, config) is not None:
        return 1, 0, 0
    if ins.op == Op.HALT:
        return 0, 1, 0
    return 0, 0, 1 << int(ins.stage)


def legal_words() -> list[int]:
    return [encode(i) for i in (
        load("pbuf", 0, 0, 1, pop=["vec"], push=["compute", "output"]), sync("vec", pop=["load", "output"]),
        gemm(0, 0, 1, 1, 8, True, True, pop=["load"], push=["output"], mode=1, wbits=8, wsigned=True, snap=True),
        postcfg(2, 8, True, 63, pitch=0x100, gstride=0x40, group=128), postcfg(1, 1, pm1=True),
        postcfg(0, 16, elem=2), post(0, 0x40, 4, 4, pos=31, flush=True, push=["vec"]), halt(),
        vec(VecFn.SOFTMAX, 0x100, 4, 64, pop=["output"], bits=8, io=3), vec(VecFn.DOT, 0, 1, 1, aux=2))]


@pytest.mark.parametrize("config", [UNIT, NARROW], ids=lambda c: c.name)
def test_decoder_equals_isa_decode_and_check_config(config):
    """`illegal` is exactly `decode` or `check_config` refusing the word; otherwise `halt`, or
    one bit of `queue` for the word's stage (SYNC: its `stage` field)."""
    rng = random.Random(1 + config.pe_rows)
    words = legal_words() + [near_legal_word(rng) for _ in range(2500)]
    seen: dict[str, int] = {}
    dut = InstructionDecoder(config)

    async def bench(ctx):
        for w in words:
            ctx.set(dut.word, w)
            want = expected_decode(w, config)
            assert (ctx.get(dut.illegal), ctx.get(dut.halt), ctx.get(dut.queue)) == want, hex(w)
            key = f"{w & 0xFF:#x}:{'illegal' if want[0] else 'legal'}"
            seen[key] = seen.get(key, 0) + 1

    run(dut, bench, clock=False)
    for op in Op:  # the words reach both outcomes of every opcode (HALT: legal and with a token bit)
        assert seen.get(f"{int(op):#x}:legal", 0) >= 3 and seen.get(f"{int(op):#x}:illegal", 0) >= 3, (op, seen)


def test_decoder_vec_rules_come_from_the_kernel_records():
    """Every kernel's legal word passes, and each rule of `check_vec` is enforced per kernel."""
    dut = InstructionDecoder(UNIT)
    words = []
    for fn, k in KERNELS.items():
        args = dict(bits=2 if k.packs else 0, aux=3 if k.aux else 0, io=1 if k.engine == "tile" else 0)
        score = fn in (VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN)          # one column
        words.append(encode(vec(fn, 0x40, 3, 1 if score else 5, **args)))
        base = words[-1]
        lsb, _ = FIELDS[Op.VEC]["cols"]
        words += [base & ~(0xFFFF << lsb) | 2 << lsb]
        if fn in VOTE_EXACT:                                             # at most VOTE_MAX_MEMBERS
            lsb, _ = FIELDS[Op.VEC]["aux"]
            words += [base & ~(0xFFFF << lsb) | n << lsb for n in (VOTE_MAX_MEMBERS, VOTE_MAX_MEMBERS + 1)]
        lsb, _ = FIELDS[Op.VEC]["bits"]
        words += [base & ~(0xF << lsb) | 9 << lsb, base & ~(0xF << lsb) | 1 << lsb]
        lsb, _ = FIELDS[Op.VEC]["aux"]
        words += [base & ~(0xFFFF << lsb), base | 1 << lsb]
        lsb, _ = FIELDS[Op.VEC]["io"]
        words += [base & ~(0xFF << lsb) | io << lsb for io in (0, 1, 2, 3, 0x0D, 0x3C, 0x40, 0x41, 0x43, 0x80)]

    async def bench(ctx):
        for w in words:
            ctx.set(dut.word, w)
            assert (ctx.get(dut.illegal), ctx.get(dut.halt), ctx.get(dut.queue)) == expected_decode(w, UNIT), hex(w)

    run(dut, bench, clock=False)


def quietly_refused(make, error, match):
    """`make()` raises `error`; the half-built Elaboratable is collected without Amaranth's
    UnusedElaboratable warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with pytest.raises(error, match=match):
                make()
        finally:
            gc.collect()


def test_blocks_check_their_config():
    for block in (InstructionDecoder, FetchUnit, LoadStage):
        quietly_refused(lambda: block({"pe_rows": 4}), TypeError, "AccelConfig")


# -- fetch ----------------------------------------------------------------------------------------
def fetch_trace(words: list[int], *, seed: int, slow_imem: bool, p_rdy: float = 0.6, cycles: int = 120):
    """Run the fetch unit on `words` with random queue readiness: (writes, stop cycle, error
    code, error pc), writes = [(cycle, queue, word)]."""
    dut = FetchUnit(UNIT)
    rng = random.Random(seed)
    out = {}

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        writes, data, stop = [], 0, None
        for t in range(cycles):  # cycle t
            rdy = [rng.random() < p_rdy for _ in range(N_STAGES)]
            for q, v in zip(dut.queues, rdy):
                ctx.set(q.rdy, v)
            valid = not slow_imem or rng.random() < 0.5
            ctx.set(dut.imem_data, data if valid else 0)
            ctx.set(dut.imem_valid, valid)
            for s, q in enumerate(dut.queues):
                if ctx.get(q.en):
                    assert rdy[s] and valid
                    writes.append((t, s, ctx.get(q.data)))
            if ctx.get(dut.stopped) and stop is None:
                stop = t
            a = ctx.get(dut.imem_addr)
            data = words[a] if a < len(words) else 0
            await ctx.tick()
        out.update(writes=writes, stop=stop, code=ctx.get(dut.error_code), pc=ctx.get(dut.error_pc),
                   error=ctx.get(dut.error))

    run(dut, bench)
    return out


PROGRAM = [encode(i) for i in (load("abuf", 0, 0, 1), gemm(0, 0, 1, 1, 1, False, True), postcfg(0, 0),
                               sync("vec"), post(0, 0, 1, 1), vec(VecFn.GELU, 0x40, 1, 1, io=1), sync("load"),
                               sync("output"), sync("compute"), halt())]
STAGE_OF_WORD = [0, 1, 2, 3, 2, 3, 0, 2, 1]


@pytest.mark.parametrize("slow_imem", [False, True], ids=["bram", "slow_imem"])
def test_fetch_dispatches_into_four_queues_in_program_order(slow_imem):
    """Each word goes to its stage's queue (SYNC by its `stage` field), in program order, one
    per FETCH/DECODE pair at best, waiting on a full queue or a slow memory; HALT stops."""
    res = fetch_trace(PROGRAM, seed=11, slow_imem=slow_imem)
    assert [(s, w) for _, s, w in res["writes"]] == list(zip(STAGE_OF_WORD, PROGRAM[:-1]))
    assert res["writes"][0][0] >= 1 and all(b[0] - a[0] >= 2 for a, b in zip(res["writes"], res["writes"][1:]))
    assert res["stop"] is not None and (res["error"], res["code"]) == (0, ErrorCode.NONE)


def test_fetch_nominal_timing_is_fetch_decode_pairs():
    """With every queue ready: word i is written in cycle 2i + 1, HALT is decoded in 2n + 1
    and fetch is stopped from 2n + 2."""
    res = fetch_trace(PROGRAM, seed=0, slow_imem=False, p_rdy=1.0, cycles=40)
    assert [t for t, _, _ in res["writes"]] == [2 * i + 1 for i in range(len(PROGRAM) - 1)]
    assert res["stop"] == 2 * (len(PROGRAM) - 1) + 2


@pytest.mark.parametrize("bad", [0, 0x02, encode(sync("load")) | 1 << POP_LSB, encode(halt()) | 1 << PUSH_LSB + 3,
                                 encode(post(0, 0, 4, 4)) + (1 << FIELDS[Op.POST]["cols"][0])],
                         ids=["zero", "store", "own_token", "halt_token", "post_cols"])
def test_fetch_stops_on_an_illegal_word_with_its_pc(bad):
    words = PROGRAM[:3] + [bad] + PROGRAM[3:]
    res = fetch_trace(words, seed=3, slow_imem=True)
    assert [w for _, _, w in res["writes"]] == PROGRAM[:3]
    assert (res["error"], res["code"], res["pc"]) == (1, ErrorCode.ILLEGAL, 3) and res["stop"] is not None


# -- token counters --------------------------------------------------------------------------------
def test_token_counters_add_up_four_stages_per_cycle():
    """Random pops (only where `pop_ok`) and pushes of all four stages in the same cycles: every
    counter follows +push -pop; `pop_ok` bit s of stage d is c[s -> d] > 0; `clear` zeroes."""
    rng = random.Random(6)
    dut = TokenCounters()
    model = [0] * len(COUNTERS)

    async def bench(ctx):
        for step in range(400):
            pops, pushes = [0] * N_STAGES, [0] * N_STAGES
            for d in range(N_STAGES):
                ok = ctx.get(dut.stages[d].pop_ok)
                assert ok == sum((model[COUNTER_INDEX[(s, d)]] > 0) << s for s in Stage if (s, d) in COUNTER_INDEX)
                pops[d] = ok & rng.getrandbits(N_STAGES)
                pushes[d] = rng.getrandbits(N_STAGES) & ~(1 << d) & (0xF if step < 300 else 0)
                ctx.set(dut.stages[d].pop, pops[d])
                ctx.set(dut.stages[d].push, pushes[d])
            await ctx.tick()
            for i, (s, d) in enumerate(COUNTERS):
                model[i] += (pushes[s] >> d & 1) - (pops[d] >> s & 1)
            got = ctx.get(dut.count)
            assert [got >> (TOKEN_BITS * i) & 0xFFFF for i in range(len(COUNTERS))] == model
        assert max(model) >= 0
        ctx.set(dut.clear, 1)
        for d in range(N_STAGES):
            ctx.set(dut.stages[d].push, 0b1111 & ~(1 << d))
        await ctx.tick()
        assert ctx.get(dut.count) == 0

    run(dut, bench)


# -- stage issuer ----------------------------------------------------------------------------------
def test_stage_issuer_issues_pops_pushes_and_holds():
    """Issue in an idle cycle t when the head's pop mask is covered by `pop_ok`; pops in t;
    busy t+1 .. t+D; the push mask (captured at issue) in the last cycle, t+D or later while
    `hold` is high in the cycle with one left."""
    rng = random.Random(7)
    dut = StageIssuer()

    async def bench(ctx):
        remain, pushm, seen = 0, 0, {"issue": 0, "hold": 0}
        for _ in range(600):
            valid = rng.random() < 0.6
            popm, pushm_in = rng.getrandbits(4), rng.getrandbits(4)
            dur = rng.randrange(1, 6)
            pop_ok = rng.getrandbits(4) | (0xF if rng.random() < 0.5 else 0)
            hold = rng.random() < 0.3
            ctx.set(dut.ctl.head.valid, valid)
            ctx.set(dut.ctl.head.word, rng.getrandbits(112) << 16 | pushm_in << PUSH_LSB | popm << POP_LSB)
            ctx.set(dut.ctl.tokens.pop_ok, pop_ok)
            ctx.set(dut.duration, dur)
            ctx.set(dut.hold, hold)
            issue = valid and remain == 0 and popm & ~pop_ok == 0
            last = remain == 1 and not hold
            assert (ctx.get(dut.issue), ctx.get(dut.ctl.head.pop)) == (issue, issue)
            assert ctx.get(dut.ctl.busy) == (remain != 0)
            assert ctx.get(dut.ctl.tokens.pop) == (popm if issue else 0)
            assert ctx.get(dut.last) == last
            assert ctx.get(dut.ctl.tokens.push) == (pushm if last else 0)
            seen["issue"] += issue
            seen["hold"] += remain == 1 and hold
            await ctx.tick()
            if issue:
                remain, pushm = dur, pushm_in
            elif remain > 1 or last:
                remain -= 1
        assert min(seen.values()) > 20, seen

    run(dut, bench)


# -- buffer ----------------------------------------------------------------------------------------
def test_buffer_read_write():
    rng = random.Random(8)
    dut = Buffer(24, 16)
    model = [0] * 16

    async def bench(ctx):
        held = 0
        for _ in range(300):
            ra, wa, wd = rng.randrange(16), rng.randrange(16), rng.getrandbits(24)
            re, we = rng.random() < 0.6, rng.random() < 0.5
            for sig, v in ((dut.r.en, re), (dut.r.addr, ra), (dut.w.addr, wa), (dut.w.data, wd), (dut.w.en, we)):
                ctx.set(sig, v)
            if re:
                held = model[ra]  # not transparent: the old contents
            await ctx.tick()
            if we:
                model[wa] = wd
            assert ctx.get(dut.r.data) == held

    run(dut, bench)


# -- LOAD stage ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stall", [False, True], ids=["nominal", "backpressure"])
@pytest.mark.parametrize("buf", ["abuf", "wbuf", "pbuf"])
def test_load_stage_assembles_entries(buf, stall):
    """Nominal memory (request taken at once, beat j L+j cycles later): the documented cycle of
    every write and of the push. A slow memory (request refused, beats with gaps): the same
    entries, and the instruction ends with its last beat, never before t+D."""
    cfg = UNIT
    L, B = cfg.dram_latency_cycles, cfg.dram_bytes_per_cycle
    bpe = cfg.beats_per_entry(buf)
    rng = np.random.default_rng(9)
    slow = random.Random(19)
    n, addr, dram_addr = 5, cfg.entries(buf) - 2, 64  # wraps around the end of the buffer
    image = rng.integers(0, 256, 4096, dtype=np.uint8)
    ins = load(buf, dram_addr, addr, n, pop=["compute"], push=["compute", "vec"])
    dut = LoadStage(cfg)
    eb = cfg.entry_bytes(buf)
    port = getattr(dut, buf)

    async def bench(ctx):
        ctx.set(dut.ctl.head.valid, 1)
        ctx.set(dut.ctl.head.word, encode(ins))
        ctx.set(dut.ctl.tokens.pop_ok, 0b0010)
        assert ctx.get(dut.ctl.head.pop) == 1 and ctx.get(dut.ctl.tokens.pop) == 0b0010
        await ctx.tick()  # end of the issue cycle t
        ctx.set(dut.ctl.head.valid, 0)
        writes, pushes, req, last_beat = [], [], None, None
        beats = [int.from_bytes(image[dram_addr + i * B:dram_addr + (i + 1) * B].tobytes(), "little")
                 for i in range(n * bpe)]
        D = L + n * bpe
        sent = 0
        for cyc in range(1, 4 * D):  # cycle t + cyc
            ready = not stall or slow.random() < 0.4
            ctx.set(dut.rd.req_ready, ready)
            if ctx.get(dut.rd.req_valid) and ready:
                assert req is None
                req = (cyc, ctx.get(dut.rd.req_addr), ctx.get(dut.rd.req_len))
            valid = (req is not None and sent < n * bpe and cyc >= req[0] + L + sent
                     and (not stall or slow.random() < 0.5))
            ctx.set(dut.rd.data_valid, valid)
            ctx.set(dut.rd.data, beats[sent] if valid else 0)
            if valid:
                sent += 1
                last_beat = cyc
            if ctx.get(port.en):
                writes.append((cyc, ctx.get(port.addr), ctx.get(port.data)))
            if ctx.get(dut.ctl.tokens.push):
                pushes.append((cyc, ctx.get(dut.ctl.tokens.push)))
            end = max(D, last_beat or 0) if sent == n * bpe else None
            assert ctx.get(dut.ctl.busy) == (end is None or cyc <= end)
            await ctx.tick()
        want = [(1 + L + (i + 1) * bpe - 1, (addr + i) % cfg.entries(buf),
                 int.from_bytes(image[dram_addr + i * eb:dram_addr + (i + 1) * eb].tobytes(), "little"))
                for i in range(n)]
        if stall:
            assert req[0] > 1 and last_beat > D  # the seed does stall it
            assert [w[1:] for w in writes] == [w[1:] for w in want]
            assert pushes == [(last_beat, 0b1010)]
        else:
            assert req == (1, dram_addr, n * bpe)
            assert writes == want
            assert pushes == [(D, 0b1010)]

    run(dut, bench)


def test_load_stage_sync_moves_tokens_only():
    """A SYNC in the LOAD queue: one cycle, no read request, its tokens popped and pushed."""
    dut = LoadStage(UNIT)

    async def bench(ctx):
        ctx.set(dut.ctl.head.valid, 1)
        ctx.set(dut.ctl.head.word, encode(sync("load", pop=["output"], push=["vec"])))
        ctx.set(dut.ctl.tokens.pop_ok, 0b0100)
        assert ctx.get(dut.ctl.tokens.pop) == 0b0100
        await ctx.tick()
        ctx.set(dut.ctl.head.valid, 0)
        assert ctx.get(dut.ctl.busy) and ctx.get(dut.ctl.tokens.push) == 0b1000 and not ctx.get(dut.rd.req_valid)
        await ctx.tick()
        assert not ctx.get(dut.ctl.busy) and not ctx.get(dut.rd.req_valid)

    run(dut, bench)


# -- the control path against the simulator ------------------------------------------------------
def control_path_issues(program, trace):
    """Run `ControlPath` with the four stages played by the testbench (each issues its queue
    head by the rules of docs/MACHINE_V3.md and runs for the simulator's D of that
    instruction): returns (issue cycle of each fetched word, the `cycles` port, error)."""
    from bebert.hw.control import ControlPath

    cfg = program.config
    words = [encode(i) for i in program.instrs]
    stage_of = [int(s) for s in trace.stage]
    queue_of = {s: [i for i, st in enumerate(stage_of) if st == s] for s in range(N_STAGES)}
    dut = ControlPath(cfg)
    issued = {}
    out = {}

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        remain, pushm, taken = [0] * N_STAGES, [0] * N_STAGES, [0] * N_STAGES
        data, t = 0, 0
        while not ctx.get(dut.done) and t < 20000:
            ctx.set(dut.imem_data, data)
            ctx.set(dut.imem_valid, 1)
            for s, st in enumerate(dut.stages):
                word, ok = ctx.get(st.head.word), ctx.get(st.tokens.pop_ok)
                popm = word >> POP_LSB & 0xF
                issue = remain[s] == 0 and ctx.get(st.head.valid) and popm & ~ok == 0
                ctx.set(st.busy, remain[s] != 0)
                ctx.set(st.head.pop, issue)
                ctx.set(st.tokens.pop, popm if issue else 0)
                ctx.set(st.tokens.push, pushm[s] if remain[s] == 1 else 0)
                if remain[s]:
                    remain[s] -= 1
                if issue:
                    pc = queue_of[s][taken[s]]
                    assert words[pc] == word
                    issued[pc] = t
                    taken[s] += 1
                    remain[s], pushm[s] = int(trace.dur[pc]), word >> PUSH_LSB & 0xF
            a = ctx.get(dut.imem_addr)
            data = words[a] if a < len(words) else 0
            await ctx.tick()
            t += 1
        out.update(cycles=ctx.get(dut.cycles), error=ctx.get(dut.error), done=ctx.get(dut.done))

    run(dut, bench)
    return issued, out


@pytest.mark.parametrize("depth", [2, 4])
@pytest.mark.parametrize("tokens", [False, True], ids=["race_free", "token_traffic"])
def test_control_path_issues_every_instruction_when_the_simulator_does(tokens, depth):
    """Fetch, the four queues and the 12 counters of the RTL, with stages that run the
    simulator's durations: every instruction issues in the simulator's cycle and the machine
    finishes with the simulator's cycle count."""
    from bebert.sim import simulate
    from bebert.sim.random_programs import random_test_program

    cfg = AccelConfig.from_toml(Path(__file__).resolve().parents[1] / "configs" / "small.toml")
    cfg = cfg.replace(queue_depth=depth)
    for seed in range(2):
        prog = random_test_program(np.random.default_rng(seed), cfg, 30, tokens=tokens)
        res = simulate(prog, trace=True)
        issued, out = control_path_issues(prog, res.trace)
        want = {i: int(t) for i, t in enumerate(res.trace.issue) if t >= 0}
        assert issued == want
        assert (out["done"], out["cycles"], out["error"]) == (1, res.cycles, 0)
