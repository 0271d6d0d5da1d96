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

from bebert.config import AccelConfig
from bebert.isa import Instr, Op, Stage, _STAGE_SETS, halt

from .expand import COMPUTE, LOAD, OUTPUT, VECTOR, Rec

STAGES = (LOAD, COMPUTE, OUTPUT, VECTOR)
_PREFER = (COMPUTE, OUTPUT, LOAD, VECTOR)  # ties: keep the PE array fed first


def program_order(seq: list[list[Rec]], config: AccelConfig,
                  times: dict | None = None) -> tuple[list[tuple[int, int]], int]:
    """The interleaving [(stage, index)] and the estimated cycles of the streams (module doc);
    `times`, when given, receives the estimated issue cycle of every instruction per stage."""
    depth = config.queue_depth
    L = config.dram_latency_cycles
    n = [len(s) for s in seq]
    issue = [[0] * k for k in n]
    done = [[0] * k for k in n]   # first cycle the stage is idle again (= when its pushes count)
    ptr = [0, 0, 0, 0]
    free = [0, 0, 0, 0]
    decode = -1
    order: list[tuple[int, int]] = []
    total = sum(n)
    while len(order) < total:
        best = None
        nxt = decode + 2
        for s in _PREFER:
            i = ptr[s]
            if i >= n[s]:
                continue
            rec = seq[s][i]
            e = free[s]
            ok = True
            for ds, di, landed in rec.deps:
                if di >= ptr[ds]:
                    ok = False
                    break
                t = done[ds][di] + (L if landed and ds == OUTPUT else 0)
                if t > e:
                    e = t
            if not ok:
                continue
            d = nxt if i < depth else max(nxt, issue[s][i - depth] + 1)
            t = max(e, d + 1)
            if best is None or t < best[0]:
                best = (t, s, d)
        if best is None:
            heads = {s: (ptr[s], seq[s][ptr[s]].deps) for s in STAGES if ptr[s] < n[s]}
            raise AssertionError(f"merge: no stage head can be placed (dependency cycle): {heads}")
        t, s, d = best
        i = ptr[s]
        decode = d
        issue[s][i] = t
        done[s][i] = t + seq[s][i].dur + 1
        free[s] = done[s][i]
        ptr[s] += 1
        order.append((s, i))
    end = max((free[s] for s in STAGES), default=0)
    if times is not None:
        times["issue"] = issue
    return order, max(end, decode + 1) + 1


def place_tokens(seq: list[list[Rec]], order: list[tuple[int, int]]) -> list[Instr]:
    """The program's instructions in `order` with pop / push masks, then HALT (module doc)."""
    n = [len(s) for s in seq]
    know: list[list] = [[None] * k for k in n]    # per instruction: [ended per stage x4, landed output]
    pops: list[list[int]] = [[0] * k for k in n]
    pushes: list[list[int]] = [[0] * k for k in n]
    waiting: list[bool] = [False] * n[OUTPUT]
    last_push = [[-1] * 4 for _ in range(4)]      # [src][dst]: the last instruction of src that pushed to dst
    placed = [0, 0, 0, 0]
    out_recs = seq[OUTPUT]
    for s, i in order:
        rec = seq[s][i]
        k = list(know[s][i - 1]) if i else [-1, -1, -1, -1, -1]
        k[s] = i - 1
        need: dict[int, list[int]] = {}
        for ds, di, landed in rec.deps:
            if ds == s:
                continue
            if landed and ds == OUTPUT:
                if k[4] >= di:
                    continue
            elif k[ds] >= di:
                continue
            e = need.setdefault(ds, [-1, -1])
            e[0] = max(e[0], di)
            if landed and ds == OUTPUT:
                e[1] = max(e[1], di)
        for ds, (need_end, need_landed) in need.items():
            lo = max(need_end, last_push[ds][s] + 1)
            hi = placed[ds]
            q = lo
            if ds == OUTPUT and need_landed >= 0:
                while q < hi and not out_recs[q].writes:
                    q += 1
            elif ds == OUTPUT and s != COMPUTE:
                r = lo
                while r < min(hi, lo + 3) and out_recs[r].writes and not waiting[r]:
                    r += 1
                q = r if r < hi and (not out_recs[r].writes or waiting[r]) else lo
            if q >= hi:
                raise AssertionError(f"tokens: no {Stage(ds).name} instruction placed before "
                                     f"{Stage(s).name} #{i} can push what it needs (from #{lo})")
            pushes[ds][q] |= 1 << s
            pops[s][i] |= 1 << ds
            last_push[ds][s] = q
            kq = know[ds][q]
            for x in range(5):
                if kq[x] > k[x]:
                    k[x] = kq[x]
            if q > k[ds]:
                k[ds] = q
            if ds == OUTPUT and out_recs[q].writes and s in (LOAD, VECTOR):
                waiting[q] = True   # a POST that tells LOAD / VECTOR waits for its write responses
                if q > k[4]:
                    k[4] = q
        know[s][i] = k
        placed[s] += 1
    out: list[Instr] = []
    for s, i in order:
        rec = seq[s][i]
        ins = object.__new__(Instr)
        object.__setattr__(ins, "op", rec.op)
        object.__setattr__(ins, "args", rec.args)
        object.__setattr__(ins, "pops", _STAGE_SETS[pops[s][i]])
        object.__setattr__(ins, "pushes", _STAGE_SETS[pushes[s][i]])
        out.append(ins)
    out.append(halt())
    return out
