"""Random legal, deadlock-free programs for differential tests (sim vs reference, RTL vs sim).

Two generators, both seeded through a `numpy.random.Generator`:

- `random_program`: VTA-style double-buffered tiles. Tile i loads into half i % 2 of ABUF,
  WBUF and PBUF, computes GEMMs and POSTs into half i % 2 of OBUF, and stores that half.
  Tokens order every buffer reuse (load i+2 waits for compute i through c2l, compute waits
  for its loads through l2c, POST of tile i+2 waits for store i through s2c, store waits for
  compute through c2s), so the program is race-free: the RTL, the golden executor and any
  interleaving produce the same DRAM image. Loads read the low DRAM region and stores write
  the high one, so no store ever feeds a load.
- `random_token_program`: unstructured. Any op, any flags its stage can carry, as long as
  every pop is covered by a push earlier in program order; buffer contents may race (only
  timing is meaningful). Used to shake the cycle models.

Both produce programs that cannot deadlock for any queue depth: when every pop is covered
by an earlier push in program order, the oldest unexecuted instruction always finds its
tokens (its producers are older, hence executed) and heads its queue. Both keep every
token counter between 0 and a small bound, end with all counters at zero and end in HALT.

ISA v2 features are opt-in through `features` (a subset of `ALL_FEATURES`):

- "and": some GEMMs run in AND mode (mode=1, random wneg / wshift), same buffer footprint;
- "vec": VEC words with random legal fields (`bebert.vector.check_vec` accepts them) join
  the COMPUTE stage. Their descriptors point at random DRAM bytes, so such programs are
  meaningful for timing only (simulator against simulator or RTL cycles), not for outputs.

The default, `RTL_FEATURES`, is what the RTL (`bebert.hw`) implements today (AND mode; VEC
stops the RTL with an "unsupported" error), so the RTL tests generate only what it can run;
with `features=()` the generators draw exactly the random numbers they drew before ISA v2
(the same seed gives the same v1 program).
"""

from __future__ import annotations

import numpy as np

from bebert.config import AccelConfig
from bebert.isa import COUNTERS, STAGE_OF, TOKEN_FLAGS, Buf, Instr, Op, gemm, halt, load, post, store, sync, vec
from bebert.program import Program
from bebert.vector import VecFn

MAX_TOKENS = 4  # bound on any counter in program order (RTL counters are small)
ALL_FEATURES = frozenset({"and", "vec"})  # ISA v2 beyond the v1 spine
RTL_FEATURES: frozenset[str] = frozenset({"and"})  # what bebert.hw implements (VEC: not yet)
MAX_VEC_ROWS, MAX_VEC_COLS = 4, 96  # keep VEC durations of the order of a GEMM's


def _features(features) -> frozenset[str]:
    f = frozenset(features)
    if f - ALL_FEATURES:
        raise ValueError(f"unknown feature(s) {sorted(f - ALL_FEATURES)}; known: {sorted(ALL_FEATURES)}")
    return f


def load_region_bytes(config: AccelConfig) -> int:
    """Bytes of the DRAM region LOADs read: large enough to fill every buffer once."""
    return max(config.abuf_bytes, config.wbuf_bytes, config.pbuf_bytes)


def dram_image_bytes(config: AccelConfig) -> int:
    """The DRAM image size the generated programs need: load region + store region."""
    return load_region_bytes(config) + config.obuf_bytes


def _dram_addr(rng: np.random.Generator, region: int, nbytes: int, bus: int) -> int:
    return int(rng.integers(0, (region - nbytes) // bus + 1)) * bus


def _load(rng, config: AccelConfig, buf: Buf, half: int, max_n: int, *flags: str) -> Instr:
    name = buf.name.lower()
    entries = config.entries(name) // 2
    n = int(rng.integers(1, min(max_n, entries) + 1))
    addr = half * entries + int(rng.integers(0, entries - n + 1))
    dram = _dram_addr(rng, load_region_bytes(config), n * config.entry_bytes(name), config.dram_bytes_per_cycle)
    return load(buf, dram, addr, n, *flags)


def _store(rng, config: AccelConfig, half: int, max_n: int, *flags: str) -> Instr:
    entries = config.obuf_entries // 2
    n = int(rng.integers(1, min(max_n, entries) + 1))
    addr = half * entries + int(rng.integers(0, entries - n + 1))
    dram = load_region_bytes(config) + _dram_addr(rng, config.obuf_bytes, n * config.entry_bytes("obuf"),
                                                  config.dram_bytes_per_cycle)
    return store(dram, addr, n, *flags)


def _gemm(rng, config: AccelConfig, half: int, max_k: int, *flags: str, and_mode: bool = False) -> Instr:
    bits = int(rng.choice(config.act_bits))
    a_half, w_half = config.abuf_entries // 2, config.wbuf_entries // 2
    k = int(rng.integers(1, max(1, min(max_k, w_half, a_half // bits)) + 1))
    stride = int(rng.integers(k, min(a_half // bits, 0xFFFF) + 1))  # planes never overlap, all in the half
    a = half * a_half + int(rng.integers(0, a_half - (bits - 1) * stride - k + 1))
    w = half * w_half + int(rng.integers(0, w_half - k + 1))
    signed, init = bool(rng.integers(2)), bool(rng.integers(2))
    if and_mode and rng.random() < 0.5:
        return gemm(a, w, k, stride, bits, signed, init, *flags, mode=1, wneg=bool(rng.integers(2)),
                    wshift=int(rng.integers(0, 8)))
    return gemm(a, w, k, stride, bits, signed, init, *flags)


def _vec(rng, config: AccelConfig, *flags: str) -> Instr:
    """A legal VEC word: any kernel, random shape, a bus-aligned descriptor address."""
    fn = VecFn(int(rng.choice([f.value for f in VecFn])))
    bits = int(rng.integers(1, 9)) if fn in (VecFn.PACK_A, VecFn.PACK_W) else 0
    aux = int(rng.integers(1, 9)) if fn == VecFn.DOT else 0
    desc = _dram_addr(rng, load_region_bytes(config), 64, config.dram_bytes_per_cycle)
    return vec(fn, desc, int(rng.integers(1, MAX_VEC_ROWS + 1)), int(rng.integers(1, MAX_VEC_COLS + 1)),
               *flags, bits=bits, aux=aux)


def _post(rng, config: AccelConfig, half: int, *flags: str) -> Instr:
    p_half, o_half = config.pbuf_entries // 2, config.obuf_entries // 2
    p = half * p_half + int(rng.integers(0, p_half))
    o = half * o_half + int(rng.integers(0, max(1, o_half - config.pe_rows + 1)))
    if o_half < config.pe_rows:  # the tile does not fit a half: use the whole buffer
        o = 0
    return post(p, o, int(rng.integers(0, 40)), int(rng.integers(0, 9)), bool(rng.integers(2)), *flags)


def _with(ins: Instr, *flags: str) -> Instr:
    return Instr(ins.op, ins.args, ins.flags | set(flags))


def random_program(rng: np.random.Generator, config: AccelConfig, n_instrs: int, *,
                   max_n: int = 8, max_k: int = 16, features=RTL_FEATURES) -> list[Instr]:
    """A race-free double-buffered tiled program of about `n_instrs` instructions + HALT.

    Tiles are added while the program is shorter than `n_instrs`, so it may be a few
    instructions longer. `max_n` bounds LOAD/STORE entries, `max_k` GEMM words (keep them
    small for RTL simulation). Program order is software-pipelined: the loads of tile i + 1
    come before the compute of tile i when `rng` says so. `features`: see the module doc.
    """
    features = _features(features)
    tiles: list[tuple[list[Instr], list[Instr], list[Instr]]] = []
    count = 0
    while count < max(n_instrs, 1):
        h = len(tiles) % 2
        loads = [_load(rng, config, Buf(int(rng.integers(0, 3))), h, max_n)
                 for _ in range(int(rng.integers(1, 4)))]
        comp = [_gemm(rng, config, h, max_k, and_mode="and" in features) for _ in range(int(rng.integers(1, 4)))]
        comp += [_post(rng, config, h) for _ in range(int(rng.integers(1, 3)))]
        if rng.random() < 0.2:
            comp.insert(int(rng.integers(0, len(comp) + 1)), sync())
        if "vec" in features and rng.random() < 0.4:
            comp.insert(int(rng.integers(0, len(comp) + 1)), _vec(rng, config))
        stores = [_store(rng, config, h, max_n) for _ in range(int(rng.integers(1, 3)))]
        tiles.append((loads, comp, stores))
        count += len(loads) + len(comp) + len(stores)
    T = len(tiles)
    for i, (loads, comp, stores) in enumerate(tiles):
        if i >= 2:  # half i % 2 is free once compute i - 2 is done with it
            loads[0] = _with(loads[0], "pop_next")
        loads[-1] = _with(loads[-1], "push_next")
        comp[0] = _with(comp[0], "pop_prev")
        if i >= 2:  # OBUF half i % 2 is free once store i - 2 has read it
            j = next(j for j, c in enumerate(comp) if c.op == Op.POST)
            comp[j] = _with(comp[j], "pop_next")
        comp[-1] = _with(comp[-1], "push_next", *(("push_prev",) if i + 2 < T else ()))
        stores[0] = _with(stores[0], "pop_prev")
        if i + 2 < T:
            stores[-1] = _with(stores[-1], "push_prev")
    ahead = bool(rng.integers(2))
    out: list[Instr] = []
    if ahead:  # L0 L1 C0 S0 L2 C1 S1 ...: load i + 1 before compute i
        out += tiles[0][0]
        for i in range(T):
            if i + 1 < T:
                out += tiles[i + 1][0]
            out += tiles[i][1] + tiles[i][2]
    else:
        for loads, comp, stores in tiles:
            out += loads + comp + stores
    return out + [halt()]


_STAGE_OPS = (Op.LOAD, Op.GEMM, Op.POST, Op.SYNC, Op.STORE, Op.VEC)
# flag -> counter, per op's stage (the ISA's token table)
_POPS = {op: {f: c for f, c in TOKEN_FLAGS[STAGE_OF[op]].items() if f.startswith("pop")} for op in _STAGE_OPS}
_PUSHES = {op: {f: c for f, c in TOKEN_FLAGS[STAGE_OF[op]].items() if f.startswith("push")} for op in _STAGE_OPS}


def random_token_program(rng: np.random.Generator, config: AccelConfig, n_instrs: int, *,
                         max_n: int = 64, max_k: int = 64, p_flag: float = 0.5,
                         features=RTL_FEATURES) -> list[Instr]:
    """`n_instrs` random instructions (+ token drain + HALT) with random, satisfiable tokens."""
    features = _features(features)
    cnt = dict.fromkeys(COUNTERS, 0)
    out: list[Instr] = []
    weights = np.array([3, 3, 2, 1, 2] + ([2] if "vec" in features else []), float)
    for _ in range(n_instrs):
        op = _STAGE_OPS[int(rng.choice(weights.size, p=weights / weights.sum()))]
        flags = []
        for f, c in _POPS[op].items():
            if cnt[c] > 0 and rng.random() < p_flag:
                flags.append(f)
                cnt[c] -= 1
        for f, c in _PUSHES[op].items():
            if cnt[c] < MAX_TOKENS and rng.random() < p_flag:
                flags.append(f)
                cnt[c] += 1
        h = int(rng.integers(2))
        if op == Op.LOAD:
            ins = _load(rng, config, Buf(int(rng.integers(0, 3))), h, max_n, *flags)
        elif op == Op.STORE:
            ins = _store(rng, config, h, max_n, *flags)
        elif op == Op.GEMM:
            ins = _gemm(rng, config, h, max_k, *flags, and_mode="and" in features)
        elif op == Op.POST:
            ins = _post(rng, config, h, *flags)
        elif op == Op.VEC:
            ins = _vec(rng, config, *flags)
        else:
            ins = sync(*flags)
        out.append(ins)
    # Drain what is left so that every counter ends at zero.
    for _ in range(cnt["l2c"]):
        out.append(sync("pop_prev"))
    for _ in range(cnt["s2c"]):
        out.append(sync("pop_next"))
    for _ in range(cnt["c2l"]):
        out.append(_load(rng, config, Buf.ABUF, 0, 1, "pop_next"))
    for _ in range(cnt["c2s"]):
        out.append(_store(rng, config, 0, 1, "pop_prev"))
    return out + [halt()]


def random_test_program(rng: np.random.Generator, config: AccelConfig, n_instrs: int, *,
                        tokens: bool = False, **kw) -> Program:
    """A whole `Program`: `random_program` (or `random_token_program`) and random DRAM bytes."""
    gen = random_token_program if tokens else random_program
    instrs = gen(rng, config, n_instrs, **kw)
    dram = rng.integers(0, 256, dram_image_bytes(config), dtype=np.uint8)
    meta = {"generator": gen.__name__}
    if kw.get("features"):
        meta["features"] = sorted(_features(kw["features"]))
    return Program(config=config, instrs=instrs, dram=dram, meta=meta)
