"""Unit benches of the RTL blocks against Python references (Amaranth simulator, seeded stimulus)."""

import gc
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from bebert.config import AccelConfig
from bebert.isa import (FIELDS, IsaError, Op, Stage, decode, encode, gemm, halt, load, post,
                        store, sync, vec)
from bebert.numerics import requantize
from bebert.vector import VecFn
from bebert.hw.bitserial_accumulator import BitserialAccumulator
from bebert.hw.buffer import Buffer
from bebert.hw.decoder import InstructionDecoder
from bebert.hw.fetch import ErrorCode, FetchUnit
from bebert.hw.issue import StageIssuer
from bebert.hw.load_dma import LoadDMA
from bebert.hw.popcount_array import PopcountArray
from bebert.hw.post import PostUnit
from bebert.hw.store_dma import StoreDMA
from bebert.hw.token import NAMES, TokenCounters

SMALL = AccelConfig(name="unit", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                    pbuf_bytes=1024, obuf_bytes=1024, dram_bytes_per_cycle=8, dram_latency_cycles=3,
                    queue_depth=4)


def run(dut, bench, *, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def random_word(rng: random.Random) -> int:
    """Mostly near-legal words: a real opcode with random flags and operand fields."""
    op = rng.choice([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0F, 0x06, 0x10, 0xFF] + [0x01, 0x02, 0x03, 0x04] * 3)
    w = rng.getrandbits(128) & ~0xFF | op
    if rng.random() < 0.6:  # clear the flags most of the time so legality hinges on operands
        w &= ~(0xF << 8)
    if op in (0x01, 0x02) and rng.random() < 0.7:
        w = (w & ~(0xF << 16)) | (rng.choice([0, 1, 2, 3, 3, 4]) << 16)
    if op == 0x03 and rng.random() < 0.7:
        w = (w & ~(0xF << 112)) | (rng.randrange(0, 10) << 112)
    if op == 0x03 and rng.random() < 0.6:  # mode / wneg / wshift: legal AND words, XNOR words with AND operands
        w &= ~(0x1F << 118)
        if rng.random() < 0.5:
            w |= rng.choice([1, 3, 0b10101, 0b11111, 2, 0b100]) << 118
    if op == 0x10:  # VEC: a known fn most of the time, bits / aux as the kernel wants (or not)
        fn = rng.choice([0, 12, 255] + [int(f) for f in VecFn] * 3)
        w = (w & ~(0xFF << 16)) | (fn << 16)
        if rng.random() < 0.7:
            w &= ~(0xF << 24)
            if fn in (VecFn.PACK_A, VecFn.PACK_W):
                w |= rng.randrange(0, 10) << 24
        if rng.random() < 0.7:
            w &= ~(0xFFFF << 96)
            if fn == VecFn.DOT:
                w |= rng.randrange(0, 3) << 96
        for lsb in (64, 80):
            if rng.random() < 0.1:
                w &= ~(0xFFFF << lsb)
    if op == 0x04 and rng.random() < 0.7:
        w = (w & ~(0x3F << 88)) | (rng.randrange(0, 12) << 88)
    for o, name in ((0x01, "n"), (0x02, "n"), (0x03, "k")):
        if op == o and rng.random() < 0.2:
            lsb, width = FIELDS[Op(o)][name]
            w &= ~(((1 << width) - 1) << lsb)
    return w


from bebert.hw.vector_unit import IMPLEMENTED  # noqa: E402


def test_decoder_matches_isa_decode():
    """`illegal` is exactly `isa.decode` refusing the word; a legal VEC whose kernel the vector
    unit does not run is `unsupported` and goes to no stage; anything else goes to its stage."""
    rng = random.Random(1)
    words = [random_word(rng) for _ in range(1200)]
    words += [encode(i) for i in (load("abuf", 0, 0, 1, "pop_next"), store(0, 0, 1, "push_prev"),
                                  gemm(0, 0, 1, 1, 8, True, True, "pop_prev", "push_next"),
                                  gemm(0, 0, 1, 1, 8, True, True, mode=1, wneg=True, wshift=7),
                                  post(0, 0, 63, 8, False), sync(), halt(),
                                  vec(VecFn.SOFTMAX, 0x100, 4, 64, "pop_prev"),
                                  vec(VecFn.PACK_W, 0x100, 4, 64, bits=8), vec(VecFn.DOT, 0, 1, 1, aux=2))]
    seen = {"illegal": 0, "and_gemm": 0, "vec": 0}
    dut = InstructionDecoder()

    async def bench(ctx):
        for w in words:
            ctx.set(dut.word, w)
            try:
                ins = decode(w)
            except IsaError:
                assert (ctx.get(dut.illegal), ctx.get(dut.unsupported)) == (1, 0), hex(w)
                seen["illegal"] += 1
                continue
            assert ctx.get(dut.illegal) == 0, hex(w)
            got = (ctx.get(dut.to_load), ctx.get(dut.to_compute), ctx.get(dut.to_store), ctx.get(dut.halt))
            if ins.op == Op.VEC and ins.fn not in IMPLEMENTED:  # no vector-unit kernel for it
                assert ctx.get(dut.unsupported) == 1 and got == (0, 0, 0, 0), hex(w)
                continue
            assert ctx.get(dut.unsupported) == 0, hex(w)
            seen["and_gemm"] += ins.op == Op.GEMM and ins.mode == 1
            seen["vec"] += ins.op == Op.VEC
            want = tuple(int(ins.stage == s) for s in (Stage.LOAD, Stage.COMPUTE, Stage.STORE, Stage.FETCH))
            assert got == want, hex(w)

    run(dut, bench, clock=False)
    assert min(seen.values()) >= 10, seen  # the random words reach every outcome


def test_popcount_array_dot_products():
    """XNOR: the +-1 dot product over a's active bits; AND: popcount(a & s); the mode may
    change every cycle (it is a per-instruction mux after the shared popcounts)."""
    R, C, W = 3, 4, 16
    rng = np.random.default_rng(2)
    dut = PopcountArray(R, C, W)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for i in range(60):
            a = rng.integers(0, 2, (R, W))
            s = rng.integers(0, 2, (C, W))
            and_mode = int(rng.integers(2)) if i >= 4 else i % 2
            if i == 2:
                a[:], s[:] = 1, 1  # the largest AND count
            ctx.set(dut.a, int("".join(str(b) for b in a.reshape(-1)[::-1]), 2))
            ctx.set(dut.s, int("".join(str(b) for b in s.reshape(-1)[::-1]), 2))
            ctx.set(dut.and_mode, and_mode)
            await ctx.tick()
            dot = ctx.get(dut.dot)
            for r in range(R):
                for c in range(C):
                    want = int((a[r] & s[c]).sum()) if and_mode else int((a[r] * (2 * s[c] - 1)).sum())
                    assert dot[r][c] == want

    run(dut, bench)


def wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


@pytest.mark.parametrize("DB", [8, 27])  # 27: terms past 2^31 exercise the 32-bit wrap
def test_bitserial_accumulator_shift_accumulate(DB):
    R, C = 2, 3
    rng = random.Random(3)
    dut = BitserialAccumulator(R, C, DB)
    model = [[0] * C for _ in range(R)]

    async def bench(ctx):
        for _ in range(150):
            en, clear, neg, shift = rng.random() < 0.8, rng.random() < 0.1, rng.random() < 0.3, rng.randrange(15)
            dots = [[rng.randrange(-(1 << (DB - 1)), 1 << (DB - 1)) for _ in range(C)] for _ in range(R)]
            if rng.random() < 0.05:
                dots = [[(1 << (DB - 1)) - 1] * C for _ in range(R)]
            ctx.set(dut.en, en)
            ctx.set(dut.clear, clear)
            ctx.set(dut.negate, neg)
            ctx.set(dut.shift, shift)
            ctx.set(dut.dot, dots)
            await ctx.tick()
            if en:
                for r in range(R):
                    for c in range(C):
                        base = 0 if clear else model[r][c]
                        term = dots[r][c] << shift
                        model[r][c] = wrap32(base - term if neg else base + term)
            acc = ctx.get(dut.acc)
            assert [[acc[r][c] for c in range(C)] for r in range(R)] == model

    run(dut, bench)


@pytest.mark.parametrize("seed", [4, 5])
def test_post_unit_matches_requantize(seed):
    C = 4
    rng = np.random.default_rng(seed)
    dut = PostUnit(C, 6)
    cases = []
    for i in range(60):
        acc = rng.integers(-(1 << 31), 1 << 31, C, dtype=np.int64)
        if i % 3 == 0:
            acc = rng.integers(-5000, 5000, C)
        mult = rng.integers(-(1 << 31), 1 << 31, C, dtype=np.int64)
        if i % 2:
            mult = rng.integers(-(1 << 16), 1 << 16, C)
        bias = rng.integers(-(1 << 31), 1 << 31, C, dtype=np.int64)
        shift = int(rng.choice([0, 1, 2, 7, 16, 31, 40, 62, 63]))
        obits = int(rng.integers(0, 9))
        osigned = bool(rng.integers(2))
        cases.append((acc, mult, bias, shift, obits, osigned))

    async def bench(ctx):
        for n, (acc, mult, bias, shift, obits, osigned) in enumerate(cases):
            params = 0
            for c in range(C):
                params |= (int(mult[c]) & 0xFFFFFFFF) << (64 * c) | (int(bias[c]) & 0xFFFFFFFF) << (64 * c + 32)
            ctx.set(dut.valid, 1)
            ctx.set(dut.acc, [int(x) for x in acc])
            ctx.set(dut.params, params)
            ctx.set(dut.shift, shift)
            ctx.set(dut.obits, obits)
            ctx.set(dut.osigned, osigned)
            ctx.set(dut.addr, n % 64)
            await ctx.tick()
            ctx.set(dut.valid, 0)
            assert ctx.get(dut.w_en) == 1 and ctx.get(dut.w_addr) == n % 64
            data = ctx.get(dut.w_data)
            got = [wrap32((data >> (32 * c)) & 0xFFFFFFFF) for c in range(C)]
            want = requantize(acc, mult, bias, shift, obits, osigned).tolist()
            assert got == want, (acc, mult, bias, shift, obits, osigned)

    run(dut, bench)


def test_token_counters():
    rng = random.Random(6)
    dut = TokenCounters()
    model = dict.fromkeys(NAMES, 0)

    async def bench(ctx):
        for _ in range(300):
            ops = {n: (rng.random() < 0.4, rng.random() < 0.4 and model[n] > 0) for n in NAMES}
            for n, (inc, dec) in ops.items():
                ctx.set(getattr(dut, f"{n}_inc"), inc)
                ctx.set(getattr(dut, f"{n}_dec"), dec)
            await ctx.tick()
            for n, (inc, dec) in ops.items():
                model[n] += int(inc) - int(dec)
                assert ctx.get(getattr(dut, f"{n}_avail")) == int(model[n] > 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        assert all(ctx.get(getattr(dut, f"{n}_avail")) == 0 for n in NAMES)

    run(dut, bench)


def test_stage_issuer_timing():
    """Issue in an idle cycle t when tokens allow; busy t+1..t+D; pushes in t+D."""
    rng = random.Random(7)
    dut = StageIssuer()

    async def bench(ctx):
        remain, held = 0, 0
        for _ in range(400):
            valid = rng.random() < 0.6
            flags = rng.randrange(16)
            dur = rng.randrange(1, 6)
            ok_p, ok_n = rng.random() < 0.7, rng.random() < 0.7
            for s, v in ((dut.head_valid, valid), (dut.head_flags, flags), (dut.duration, dur),
                         (dut.pop_prev_ok, ok_p), (dut.pop_next_ok, ok_n)):
                ctx.set(s, v)
            issue = valid and remain == 0 and (not flags & 1 or ok_p) and (not flags & 2 or ok_n)
            assert ctx.get(dut.issue) == issue
            assert ctx.get(dut.busy) == (remain != 0)
            assert ctx.get(dut.pop_prev) == (issue and flags & 1 != 0)
            assert ctx.get(dut.pop_next) == (issue and flags & 2 != 0)
            assert ctx.get(dut.push_prev) == (remain == 1 and held & 4 != 0)
            assert ctx.get(dut.push_next) == (remain == 1 and held & 8 != 0)
            await ctx.tick()
            if issue:
                remain, held = dur, flags
            elif remain:
                remain -= 1

    run(dut, bench)


def test_buffer_read_write():
    rng = random.Random(8)
    dut = Buffer(24, 16)
    model = [0] * 16

    async def bench(ctx):
        held = 0
        for _ in range(300):
            ra, wa, wd = rng.randrange(16), rng.randrange(16), rng.getrandbits(24)
            re, we = rng.random() < 0.6, rng.random() < 0.5
            for sig, v in ((dut.r_en, re), (dut.r_addr, ra), (dut.w_addr, wa), (dut.w_data, wd), (dut.w_en, we)):
                ctx.set(sig, v)
            if re:
                held = model[ra]  # not transparent: the old contents
            await ctx.tick()
            if we:
                model[wa] = wd
            assert ctx.get(dut.r_data) == held

    run(dut, bench)


def entry_bits_to_int(entry_bytes: np.ndarray) -> int:
    return int.from_bytes(entry_bytes.tobytes(), "little")


@pytest.mark.parametrize("stall", [False, True], ids=["nominal", "backpressure"])
@pytest.mark.parametrize("buf", ["abuf", "wbuf", "pbuf"])
def test_load_dma_assembles_entries(buf, stall):
    """Nominal memory (request taken at once, beat j L+j cycles later): the documented cycle
    of every write and of the push. A slow memory (request refused, beats with gaps): the
    same entries, and the instruction ends with its last beat, never before t+D."""
    cfg = SMALL
    L = cfg.dram_latency_cycles
    bpe = cfg.beats_per_entry(buf)
    rng = np.random.default_rng(9)
    slow = random.Random(19)
    n, addr, dram_addr = 5, cfg.entries(buf) - 2, 64  # wraps around the end of the buffer
    image = rng.integers(0, 256, 4096, dtype=np.uint8)
    ins = load(buf, dram_addr, addr, n, "push_next")
    dut = LoadDMA(cfg)
    eb = cfg.entry_bytes(buf)

    async def bench(ctx):
        ctx.set(dut.head_valid, 1)
        ctx.set(dut.head_word, encode(ins))
        assert ctx.get(dut.head_pop) == 1
        await ctx.tick()  # end of the issue cycle t
        ctx.set(dut.head_valid, 0)
        writes, pushes, req, last_beat = [], [], None, None
        beats = [int.from_bytes(image[dram_addr + i * 8:dram_addr + i * 8 + 8].tobytes(), "little")
                 for i in range(n * bpe)]
        D = L + n * bpe
        sent = 0
        for cyc in range(1, 4 * D):  # cycle t + cyc
            ready = not stall or slow.random() < 0.4
            ctx.set(dut.rd_req_ready, ready)
            if ctx.get(dut.rd_req_valid) and ready:
                assert req is None
                req = (cyc, ctx.get(dut.rd_req_addr), ctx.get(dut.rd_req_len))
            valid = (req is not None and sent < n * bpe and cyc >= req[0] + L + sent
                     and (not stall or slow.random() < 0.5))
            ctx.set(dut.rd_data_valid, valid)
            ctx.set(dut.rd_data, beats[sent] if valid else 0)
            if valid:
                sent += 1
                last_beat = cyc
            if ctx.get(getattr(dut, f"{buf}_w_en")):
                writes.append((cyc, ctx.get(getattr(dut, f"{buf}_w_addr")), ctx.get(getattr(dut, f"{buf}_w_data"))))
            if ctx.get(dut.l2c_inc):
                pushes.append(cyc)
            end = max(D, last_beat or 0) if sent == n * bpe else None
            assert ctx.get(dut.busy) == (end is None or cyc <= end)
            await ctx.tick()
        want = [(1 + L + (i + 1) * bpe - 1, (addr + i) % cfg.entries(buf),
                 entry_bits_to_int(image[dram_addr + i * eb:dram_addr + (i + 1) * eb])) for i in range(n)]
        if stall:
            assert req[0] > 1 and last_beat > D  # the seed does stall it
            assert [w[1:] for w in writes] == [w[1:] for w in want]
            assert pushes == [last_beat]
        else:
            assert req == (1, dram_addr, n * bpe)
            assert writes == want
            assert pushes == [D]

    run(dut, bench)


@pytest.mark.parametrize("stall", [False, True], ids=["nominal", "backpressure"])
def test_store_dma_streams_beats(stall):
    """Nominal memory: request in t+1, beats t+2.., push in t+D. A slow memory (request and
    beats refused at random, a late response): the same beats, each held on `wr_data` until
    taken, and the instruction ends with the response."""
    cfg = SMALL
    L = cfg.dram_latency_cycles
    bpe = cfg.beats_per_entry("obuf")
    rng = random.Random(10)
    slow = random.Random(20)
    entries = [rng.getrandbits(cfg.entry_bits["obuf"]) for _ in range(cfg.obuf_entries)]
    n, addr = 4, cfg.obuf_entries - 1
    ins = store(0x100, addr, n, "pop_prev", "push_prev")
    dut = StoreDMA(cfg)

    async def bench(ctx):
        ctx.set(dut.c2s_ok, 1)
        ctx.set(dut.head_valid, 1)
        ctx.set(dut.head_word, encode(ins))
        assert ctx.get(dut.head_pop) == 1 and ctx.get(dut.c2s_dec) == 1
        rdata = 0
        raddr = ctx.get(dut.obuf_r_addr) if ctx.get(dut.obuf_r_en) else None
        await ctx.tick()
        ctx.set(dut.head_valid, 0)
        D = 1 + n * bpe + L
        req, beats, pushes, resp_at = None, [], [], None
        for cyc in range(1, 5 * D):
            if raddr is not None:  # synchronous read of last cycle's address, held without r_en
                rdata = entries[raddr]
            ctx.set(dut.obuf_r_data, rdata)
            req_ready = not stall or slow.random() < 0.4
            data_ready = not stall or slow.random() < 0.5
            ctx.set(dut.wr_req_ready, req_ready)
            ctx.set(dut.wr_data_ready, data_ready)
            if ctx.get(dut.wr_req_valid) and req_ready:
                assert req is None
                req = (cyc, ctx.get(dut.wr_req_addr), ctx.get(dut.wr_req_len))
            if ctx.get(dut.wr_data_valid):
                assert req is not None and cyc > req[0]
                if data_ready:
                    beats.append((cyc, ctx.get(dut.wr_data)))
                    if len(beats) == n * bpe:
                        resp_at = cyc + L + (3 if stall else 0)
            ctx.set(dut.wr_resp_valid, cyc == resp_at)
            if ctx.get(dut.s2c_inc):
                pushes.append(cyc)
            assert ctx.get(dut.busy) == (resp_at is None or cyc <= max(D, resp_at))
            raddr = ctx.get(dut.obuf_r_addr) if ctx.get(dut.obuf_r_en) else None
            await ctx.tick()
        mask = (1 << cfg.bus_bits) - 1
        want = [(2 + i, entries[(addr + i // bpe) % cfg.obuf_entries] >> (cfg.bus_bits * (i % bpe)) & mask)
                for i in range(n * bpe)]
        if stall:
            assert req[0] > 1 and resp_at > D
            assert [b[1] for b in beats] == [b[1] for b in want]
            assert pushes == [resp_at]
        else:
            assert req == (1, 0x100, n * bpe)
            assert beats == want
            assert pushes == [D]

    run(dut, bench)


VEC_WORD = encode(vec(VecFn.GELU, 0x100, 2, 8))


@pytest.mark.parametrize("slow_imem", [False, True], ids=["bram", "slow_imem"])
def test_fetch_alternates_and_waits_on_full_queues(slow_imem):
    """FETCH/DECODE alternation, in-order dispatch, stall on a full queue (and, with a slow
    instruction memory, on `imem_valid`), stop on HALT; on an illegal word stop with `error`,
    the error code and the pc of that word; a VEC goes to the compute queue."""
    prog = [encode(i) for i in (load("abuf", 0, 0, 1), gemm(0, 0, 1, 1, 1, False, True), sync(),
                                store(0, 0, 1), halt())]
    cases = ((prog, ErrorCode.NONE), (prog[:3] + [0] + prog[3:], ErrorCode.ILLEGAL),
             (prog[:3] + [VEC_WORD] + prog[3:], ErrorCode.NONE))  # VEC: to the compute queue
    for words, want_code in cases:
        dut = FetchUnit()
        rng = random.Random(11)

        async def bench(ctx):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            pushed, data, stop_cycle, waited = [], 0, None, 0
            for t in range(80):  # cycle t
                rdy = {s: rng.random() < 0.6 for s in ("load", "compute", "store")}
                for s, v in rdy.items():
                    ctx.set(getattr(dut, f"{s}_w_rdy"), v)
                valid = not slow_imem or rng.random() < 0.5
                ctx.set(dut.imem_data, data if valid else 0)
                ctx.set(dut.imem_valid, valid)
                waited += not valid
                for s in rdy:
                    if ctx.get(getattr(dut, f"{s}_w_en")):
                        assert rdy[s] and valid
                        pushed.append((t, s, ctx.get(dut.q_w_data)))
                if ctx.get(dut.stopped) and stop_cycle is None:
                    stop_cycle = t
                a = ctx.get(dut.imem_addr)
                data = words[a] if a < len(words) else 0
                await ctx.tick()
            legal = words[:3] if want_code else words[:-1]
            assert [w for _, _, w in pushed] == legal
            assert pushed[0][0] >= 1 and all(b[0] - a[0] >= 2 for a, b in zip(pushed, pushed[1:]))
            assert stop_cycle is not None
            assert (ctx.get(dut.error), ctx.get(dut.error_code)) == (want_code != 0, want_code)
            assert ctx.get(dut.error_pc) == (3 if want_code else 0)
            assert waited > 0 or not slow_imem

        run(dut, bench)


def _quietly_dropped(make):
    """Build (or fail to build) an Accelerator that is never elaborated, without Amaranth's
    UnusedElaboratable warning when it is collected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return make()
        finally:
            gc.collect()


def test_accelerator_checks_its_config():
    from bebert.hw import Accelerator

    with pytest.raises(TypeError):
        _quietly_dropped(lambda: Accelerator({"pe_rows": 4}))
    with pytest.raises(ValueError, match="power of two"):  # refused before elaboration
        Accelerator(SMALL.replace(abuf_bytes=3 * SMALL.entry_bytes("abuf")))


def test_accelerator_ports_are_the_documented_ones():
    from bebert.hw import Accelerator

    members = _quietly_dropped(lambda: dict(Accelerator(SMALL).signature.members.items()))
    ports = {name: (member.flow.value.lower(), Shape.cast(member.shape).width) for name, member in members.items()}
    bus = SMALL.bus_bits
    assert ports == {
        "start": ("in", 1), "busy": ("out", 1), "done": ("out", 1), "error": ("out", 1),
        "error_code": ("out", 4), "error_pc": ("out", 32), "cycles": ("out", 32),
        "imem_addr": ("out", 32), "imem_data": ("in", 128), "imem_valid": ("in", 1),
        "rd_req_valid": ("out", 1), "rd_req_ready": ("in", 1), "rd_req_addr": ("out", 32),
        "rd_req_len": ("out", 32), "rd_data_valid": ("in", 1), "rd_data": ("in", bus),
        "wr_req_valid": ("out", 1), "wr_req_ready": ("in", 1), "wr_req_addr": ("out", 32),
        "wr_req_len": ("out", 32), "wr_data_valid": ("out", 1), "wr_data_ready": ("in", 1),
        "wr_data": ("out", bus), "wr_resp_valid": ("in", 1),
        # The vector unit's port (docs/ARCHITECTURE.md, "RTL ports").
        "vrd_req_valid": ("out", 1), "vrd_req_ready": ("in", 1), "vrd_req_addr": ("out", 32),
        "vrd_req_len": ("out", 32), "vrd_data_valid": ("in", 1), "vrd_data": ("in", bus),
        "vwr_valid": ("out", 1), "vwr_ready": ("in", 1), "vwr_addr": ("out", 32), "vwr_data": ("out", bus),
        "vwr_strb": ("out", bus // 8), "vwr_resp_valid": ("in", 1),
    }
