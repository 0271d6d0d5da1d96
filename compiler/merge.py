"""Stage streams -> one program: the interleaving (program order) and the tokens.

`program_order` merges the four stage streams of `compiler/expand.py`. The machine fetches in
program order, two cycles an instruction, into queues of `queue_depth`; so the order decides how
far each stage can run ahead. The merge simulates the machine's timing contract on the fly
(docs/MACHINE_V3.md, "Stages and tokens"; durations as the simulator charges them) and always
places next the stage head that can issue earliest among those whose dependencies are already
placed. Every producer is then before its consumers: program order is a valid sequential
execution, which is what the golden executor runs.

`place_tokens` turns each dependency into a token where the order does not already imply it. It
walks the program keeping, per instruction, what it knows has ended in each stage (a vector
clock over stage indices, carried by stage order and by the tokens it pops) and what it knows
has *landed* (the output path's writes are in DRAM when a POST that pushes has waited for its
write responses). A dependency it does not know of becomes one pop from c[src -> dst], matched
to a push on the producer (or a later instruction of its stage placed earlier in the program):
counters are FIFO, so pushes and pops on a counter are matched in order. A landed dependency
needs a POST that writes to push to LOAD or VECTOR (the POST then waits for its responses, L
cycles, bebert/timing.py); a push to COMPUTE (the snapshot hand-over) never waits.
"""

from __future__ import annotations

import numba
import numpy as np

from bebert.config import AccelConfig
from bebert.isa import Instr, Stage, _STAGE_SETS, halt

from .expand import COMPUTE, LOAD, OUTPUT, VECTOR, Rec

STAGES = (LOAD, COMPUTE, OUTPUT, VECTOR)
_PREFER = (COMPUTE, OUTPUT, LOAD, VECTOR)  # ties: keep the PE array fed first


def flatten(seq: list[list[Rec]]) -> dict:
    """The streams as flat arrays (record g = base[stage] + index): durations, POST writes, and the
    dependencies in CSR form, for the two kernels below."""
    n = np.array([len(x) for x in seq], np.int64)
    base = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    dur, writes, ptr, dst, didx, dland = [], [], [0], [], [], []
    for stream in seq:
        for rec in stream:
            dur.append(rec.dur)
            writes.append(rec.writes)
            for a, b, c in rec.deps:
                dst.append(a)
                didx.append(b)
                dland.append(c)
            ptr.append(len(dst))
    return {"n": n, "base": base, "dur": np.array(dur, np.int64), "writes": np.array(writes, np.bool_),
            "ptr": np.array(ptr, np.int64), "dstage": np.array(dst, np.int64), "didx": np.array(didx, np.int64),
            "dland": np.array(dland, np.bool_)}


@numba.njit(cache=True)
def _order(n, base, dur, ptr, dstage, didx, dland, depth, L, prefer):  # pragma: no cover (compiled)
    total = n.sum()
    issue = np.zeros(total, np.int64)
    done = np.zeros(total, np.int64)
    order = np.empty(total, np.int64)
    at = np.zeros(4, np.int64)
    free = np.zeros(4, np.int64)
    seen = np.zeros(4, np.int64)
    dep_end = np.zeros(4, np.int64)
    decode = -1
    for step in range(total):
        best_t, best_s, best_d = -1, -1, -1
        nxt = decode + 2
        for pi in range(4):
            s = prefer[pi]
            i = at[s]
            if i >= n[s]:
                continue
            g = base[s] + i
            k, e = seen[s], dep_end[s]
            nd = ptr[g + 1] - ptr[g]
            while k < nd:
                j = ptr[g] + k
                ds = dstage[j]
                if didx[j] >= at[ds]:
                    break
                t = done[base[ds] + didx[j]] + (L if dland[j] and ds == 2 else 0)
                if t > e:
                    e = t
                k += 1
            seen[s], dep_end[s] = k, e
            if k < nd:
                continue
            if free[s] > e:
                e = free[s]
            d = nxt if i < depth else max(nxt, issue[g - depth] + 1)
            t = e if e > d + 1 else d + 1
            if best_s < 0 or t < best_t:
                best_t, best_s, best_d = t, s, d
        if best_s < 0:
            return order[:step], issue, -1
        g = base[best_s] + at[best_s]
        decode = best_d
        issue[g] = best_t
        done[g] = best_t + dur[g] + 1
        free[best_s] = done[g]
        at[best_s] += 1
        seen[best_s] = 0
        dep_end[best_s] = 0
        order[step] = g
    return order, issue, max(free.max(), decode + 1) + 1


def program_order(seq: list[list[Rec]], config: AccelConfig, times: dict | None = None,
                  flat: dict | None = None) -> tuple[np.ndarray, int]:
    """The interleaving (record numbers, `flatten`) and the estimated cycles of the streams (module
    doc); `times`, when given, receives the estimated issue cycle of every instruction per stage."""
    f = flat or flatten(seq)
    order, issue, cycles = _order(f["n"], f["base"], f["dur"], f["ptr"], f["dstage"], f["didx"], f["dland"],
                                  config.queue_depth, config.dram_latency_cycles, np.array(_PREFER, np.int64))
    if cycles < 0:
        raise AssertionError(f"merge: no stage head can be placed after {len(order)} instructions "
                             "(a dependency cycle)")
    if times is not None:
        times["issue"] = [issue[b:b + k].tolist() for b, k in zip(f["base"], f["n"])]
    return order, int(cycles)


@numba.njit(cache=True)
def _tokens(n, base, ptr, dstage, didx, dland, writes, order):  # pragma: no cover (compiled)
    total = n.sum()
    stage = np.empty(total, np.int64)
    for s in range(4):
        stage[base[s]:base[s] + n[s]] = s
    know = np.full((total, 5), -1, np.int64)   # per record: ended per stage x4, landed output
    pops = np.zeros(total, np.int64)
    pushes = np.zeros(total, np.int64)
    waiting = np.zeros(total, np.bool_)
    last_push = np.full((4, 4), -1, np.int64)
    placed = np.zeros(4, np.int64)
    need_end = np.empty(4, np.int64)
    need_land = np.empty(4, np.int64)
    k = np.empty(5, np.int64)
    ob = base[2]
    for step in range(total):
        g = order[step]
        s = stage[g]
        i = g - base[s]
        if i > 0:
            k[:] = know[g - 1]
        else:
            k[:] = -1
        k[s] = i - 1
        need_end[:] = -1
        need_land[:] = -1
        for j in range(ptr[g], ptr[g + 1]):
            ds, di = dstage[j], didx[j]
            if ds == s:
                continue
            land = dland[j] and ds == 2
            if (k[4] if land else k[ds]) >= di:
                continue
            need_end[ds] = max(need_end[ds], di)
            if land:
                need_land[ds] = max(need_land[ds], di)
        for ds in range(4):
            if need_end[ds] < 0:
                continue
            lo = max(need_end[ds], last_push[ds, s] + 1)
            hi = placed[ds]
            q = lo
            if ds == 2 and need_land[ds] >= 0:
                while q < hi and not writes[ob + q]:
                    q += 1
            elif ds == 2 and s != 1:
                r = lo
                while r < min(hi, lo + 3) and writes[ob + r] and not waiting[ob + r]:
                    r += 1
                q = r if r < hi and (not writes[ob + r] or waiting[ob + r]) else lo
            if q >= hi:
                return pops, pushes, g
            gq = base[ds] + q
            pushes[gq] |= 1 << s
            pops[g] |= 1 << ds
            last_push[ds, s] = q
            for x in range(5):
                if know[gq, x] > k[x]:
                    k[x] = know[gq, x]
            if q > k[ds]:
                k[ds] = q
            if ds == 2 and writes[gq] and (s == 0 or s == 3):
                waiting[gq] = True   # a POST that tells LOAD / VECTOR waits for its write responses
                if q > k[4]:
                    k[4] = q
        know[g] = k
        placed[s] += 1
    return pops, pushes, -1


def place_tokens(seq: list[list[Rec]], order: np.ndarray, flat: dict | None = None) -> list[Instr]:
    """The program's instructions in `order` with pop / push masks, then HALT (module doc)."""
    f = flat or flatten(seq)
    pops, pushes, bad = _tokens(f["n"], f["base"], f["ptr"], f["dstage"], f["didx"], f["dland"], f["writes"],
                                np.asarray(order, np.int64))
    if bad >= 0:
        s = int(np.searchsorted(f["base"], bad, side="right") - 1)
        raise AssertionError(f"tokens: no instruction placed before {Stage(s).name} #{bad - f['base'][s]} "
                             "can push what it needs")
    recs = [r for stream in seq for r in stream]
    pops, pushes = pops.tolist(), pushes.tolist()
    new = object.__new__
    out: list[Instr] = []
    for g in order.tolist():   # fields are in range by construction: no re-check of a checked word
        rec = recs[g]
        ins = new(Instr)
        d = ins.__dict__
        d["op"], d["args"], d["pops"], d["pushes"] = rec.op, rec.args, _STAGE_SETS[pops[g]], _STAGE_SETS[pushes[g]]
        out.append(ins)
    out.append(halt())
    return out
