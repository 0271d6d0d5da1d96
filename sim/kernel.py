"""The cycle model of the accelerator, as two Numba kernels over plain arrays.

Both kernels implement docs/ARCHITECTURE.md, "Timing", literally:

- fetch alternates FETCH (cycle 0, 2, ...) and DECODE; in DECODE it stops on HALT or on an
  illegal word (stopped from the next cycle), or pushes the instruction into its stage's
  queue if the queue level *at the start of the cycle* is below `depth` (a pop in the same
  cycle does not make room), or stays in DECODE;
- a queue push at the end of cycle t is visible in cycle t + 1;
- a stage idle in cycle t issues its queue head if every counter it pops is > 0 in cycle t,
  pops at the end of t, executes in t+1 .. t+D, its pushes count from t+D+1, and it is idle
  again in t+D+1; counter updates from different stages in one cycle add up;
- the machine is done in the first cycle T in which fetch has stopped, every queue is empty
  and every stage is idle; the cycle count is T + 1.

`run_reference` steps one cycle at a time with explicit registered state (a down-counter per
stage, next-state computed from current state). `run_events` computes the same cycles but
jumps over the cycles in which no unit can change state; the tests hold the two equal.

Inputs, one entry per fetched word (the Python wrapper builds them once; the stream ends
with the first HALT or illegal word, so the kernels never index past it):

    stage  int64  0 LOAD, 1 COMPUTE, 2 OUTPUT, 3 VECTOR, 4 HALT (fetch itself), -1 illegal word
    dur    int64  D, the execution cycles
    popm   int64  bit c set: the instruction pops token counter c (see COUNTERS)
    pushm  int64  bit c set: the instruction pushes token counter c
    opi    int64  index into OPS (statistics only)
    rd, wr int64  DRAM bytes read / written (LOAD, the output path, the vector unit)
    bops   int64  useful binary operations (GEMM only, XNOR or AND mode)

Both return (status, cycles, stats, diag): status OK / DEADLOCK; cycles = T + 1 (or the
cycle at which the deadlock was found); stats and diag laid out as the S_* / D_* indices.

Optional trace: pass `issue`, an int64 array as long as `stage`, and each kernel writes
into `issue[i]` the cycle t in which instruction i issued (it executes in t+1 .. t+D);
entries of words that never issue (HALT, an illegal word) are left as they were. Left
out (None), Numba compiles the recording away, so the untraced run is unchanged.
"""

from __future__ import annotations

import numba
import numpy as np

from bebert.isa import COUNTER_NAMES, EXEC_STAGES, STAGE_NAMES

# Token counters, in bit order of popm / pushm (`bebert.isa.COUNTERS`).
COUNTERS = COUNTER_NAMES
NC = len(COUNTERS)
STAGES = tuple(STAGE_NAMES[s] for s in EXEC_STAGES)
NS = len(STAGES)
OPS = ("LOAD", "GEMM", "POST", "POSTCFG", "SYNC", "HALT", "VEC")
N_OPS = len(OPS)
ST_HALT, ST_ILLEGAL = NS, -1

OK, DEADLOCK = 0, 1

# stats layout
S_COUNT = 0  # + op index: instructions executed (HALT: decoded)
S_BUSY = S_COUNT + N_OPS  # + op index: busy cycles (sum of D)
S_RD = S_BUSY + N_OPS  # DRAM bytes read
S_WR = S_RD + 1  # DRAM bytes written
S_BOPS = S_WR + 1  # binary operations
S_STALL_FETCH = S_BOPS + 1  # cycles fetch sat in DECODE on a full queue
S_STALL = S_STALL_FETCH + 1  # + stage: cycles idle with a queue head whose tokens are not there
S_ERROR = S_STALL + NS  # 1 when fetch stopped on an illegal word
N_STATS = S_ERROR + 1

# diag layout (the state in which a deadlock was found)
D_PC = 0
D_PHASE = 1  # fetch: 0 FETCH, 1 DECODE, 2 stopped
D_LEVEL = 2  # + stage
D_HEAD = D_LEVEL + NS  # + stage: instruction index at the queue head, -1 if empty
D_CNT = D_HEAD + NS  # + counter
D_BUSY = D_CNT + NC  # + stage: 1 if executing
N_DIAG = D_BUSY + NS

FETCH, DECODE, STOPPED = 0, 1, 2
_NEVER = np.int64(1) << np.int64(62)


@numba.njit(cache=True)
def _fill_diag(diag, pc, phase, q, head, tail, cnt, busy, depth):
    diag[D_PC] = pc
    diag[D_PHASE] = phase
    for s in range(NS):
        diag[D_LEVEL + s] = tail[s] - head[s]
        diag[D_HEAD + s] = q[s, head[s] % depth] if tail[s] > head[s] else -1
        diag[D_BUSY + s] = 1 if busy[s] else 0
    for c in range(NC):
        diag[D_CNT + c] = cnt[c]


@numba.njit(cache=True)
def run_events(stage, dur, popm, pushm, opi, rd, wr, bops, depth, issue=None):
    """The event-driven kernel: exact cycles, but only visits cycles where something changes."""
    stats = np.zeros(N_STATS, np.int64)
    diag = np.zeros(N_DIAG, np.int64)
    q = np.zeros((NS, depth), np.int64)  # per-stage ring buffer of instruction indices
    head = np.zeros(NS, np.int64)  # pops so far
    tail = np.zeros(NS, np.int64)  # pushes so far; level = tail - head
    busy_end = np.zeros(NS, np.int64)  # first cycle in which the stage is idle again
    pend = np.zeros(NS, np.int64)  # push mask that becomes visible in cycle busy_end
    cnt = np.zeros(NC, np.int64)
    busy = np.zeros(NS, np.bool_)
    phase = FETCH
    pc = 0
    t = 0
    while True:
        # Tokens pushed at the end of t - 1 count from t.
        for s in range(NS):
            if pend[s] != 0 and busy_end[s] == t:
                for c in range(NC):
                    if (pend[s] >> c) & 1:
                        cnt[c] += 1
                pend[s] = 0
        # Done: fetch stopped, queues empty, stages idle (all in cycle t).
        if phase == STOPPED:
            done = True
            for s in range(NS):
                if tail[s] != head[s] or busy_end[s] > t:
                    done = False
            if done:
                return OK, t + 1, stats, diag
        # Fetch: decide on the levels of cycle t (before this cycle's pops).
        fpush = -1
        nphase = phase
        if phase == FETCH:
            nphase = DECODE
        elif phase == DECODE:
            st = stage[pc]
            if st == ST_ILLEGAL:
                nphase = STOPPED
                stats[S_ERROR] = 1
            elif st == ST_HALT:
                nphase = STOPPED
                stats[S_COUNT + opi[pc]] += 1
            elif tail[st] - head[st] < depth:
                fpush = st
                nphase = FETCH
            else:
                stats[S_STALL_FETCH] += 1
        # Stages: issue on the queue contents and counters of cycle t.
        for s in range(NS):
            if busy_end[s] <= t and tail[s] > head[s]:
                i = q[s, head[s] % depth]
                m = popm[i]
                ready = True
                for c in range(NC):
                    if (m >> c) & 1 and cnt[c] <= 0:
                        ready = False
                if ready:
                    for c in range(NC):
                        if (m >> c) & 1:
                            cnt[c] -= 1
                    head[s] += 1
                    busy_end[s] = t + dur[i] + 1
                    pend[s] = pushm[i]
                    if issue is not None:
                        issue[i] = t
                    o = opi[i]
                    stats[S_COUNT + o] += 1
                    stats[S_BUSY + o] += dur[i]
                    stats[S_RD] += rd[i]
                    stats[S_WR] += wr[i]
                    stats[S_BOPS] += bops[i]
                else:
                    stats[S_STALL + s] += 1
        if fpush >= 0:
            q[fpush, tail[fpush] % depth] = pc
            tail[fpush] += 1
            pc += 1
        fetch_acted = phase != STOPPED
        phase = nphase
        # The next cycle in which any unit can change state.
        nxt = _NEVER
        if phase == FETCH or (phase == STOPPED and fetch_acted):
            nxt = t + 1
        elif phase == DECODE:
            st = stage[pc]
            if st < 0 or st == ST_HALT or tail[st] - head[st] < depth:
                nxt = t + 1
        for s in range(NS):
            if busy_end[s] > t:
                if busy_end[s] < nxt:
                    nxt = busy_end[s]
            elif tail[s] > head[s]:
                m = popm[q[s, head[s] % depth]]
                ready = True
                for c in range(NC):
                    if (m >> c) & 1 and cnt[c] <= 0:
                        ready = False
                if ready:
                    nxt = t + 1
        if nxt == _NEVER:
            # Nothing can change any more: done in t + 1, or never.
            t += 1
            done = phase == STOPPED
            for s in range(NS):
                busy[s] = False
                if tail[s] != head[s]:
                    done = False
            if done:
                return OK, t + 1, stats, diag
            _fill_diag(diag, pc, phase, q, head, tail, cnt, busy, depth)
            return DEADLOCK, t, stats, diag
        # Cycles t+1 .. nxt-1 repeat the state of t+1: account their stalls.
        skip = nxt - t - 1
        if skip > 0:
            if phase == DECODE:
                stats[S_STALL_FETCH] += skip
            for s in range(NS):
                if busy_end[s] <= t and tail[s] > head[s]:
                    stats[S_STALL + s] += skip
        t = nxt


@numba.njit(cache=True)
def run_reference(stage, dur, popm, pushm, opi, rd, wr, bops, depth, issue=None):
    """The cycle-stepped reference: registered state, next state computed every cycle."""
    stats = np.zeros(N_STATS, np.int64)
    diag = np.zeros(N_DIAG, np.int64)
    q = np.zeros((NS, depth), np.int64)
    qh = np.zeros(NS, np.int64)  # ring-buffer read pointer
    level = np.zeros(NS, np.int64)
    left = np.zeros(NS, np.int64)  # execution cycles left; the stage is idle when 0
    cur = np.zeros(NS, np.int64)  # instruction being executed
    cnt = np.zeros(NC, np.int64)
    d_cnt = np.zeros(NC, np.int64)
    busy = np.zeros(NS, np.bool_)
    phase = FETCH
    pc = 0
    t = 0
    while True:
        if phase == STOPPED:
            idle = True
            for s in range(NS):
                if level[s] != 0 or left[s] != 0:
                    idle = False
            if idle:
                return OK, t + 1, stats, diag
        active = False
        for c in range(NC):
            d_cnt[c] = 0
        n_level = level.copy()
        n_left = left.copy()
        # Stages.
        for s in range(NS):
            if left[s] > 0:
                active = True
                n_left[s] = left[s] - 1
                if left[s] == 1:  # last execution cycle: pushes count from the next one
                    for c in range(NC):
                        if (pushm[cur[s]] >> c) & 1:
                            d_cnt[c] += 1
            elif level[s] > 0:
                i = q[s, qh[s]]
                ready = True
                for c in range(NC):
                    if (popm[i] >> c) & 1 and cnt[c] == 0:
                        ready = False
                if ready:
                    active = True
                    for c in range(NC):
                        if (popm[i] >> c) & 1:
                            d_cnt[c] -= 1
                    qh[s] = (qh[s] + 1) % depth
                    n_level[s] -= 1
                    n_left[s] = dur[i]
                    cur[s] = i
                    if issue is not None:
                        issue[i] = t
                    o = opi[i]
                    stats[S_COUNT + o] += 1
                    stats[S_BUSY + o] += dur[i]
                    stats[S_RD] += rd[i]
                    stats[S_WR] += wr[i]
                    stats[S_BOPS] += bops[i]
                else:
                    stats[S_STALL + s] += 1
        # Fetch.
        n_phase = phase
        if phase == FETCH:
            active = True
            n_phase = DECODE
        elif phase == DECODE:
            st = stage[pc]
            if st == ST_ILLEGAL:
                active = True
                n_phase = STOPPED
                stats[S_ERROR] = 1
            elif st == ST_HALT:
                active = True
                n_phase = STOPPED
                stats[S_COUNT + opi[pc]] += 1
            elif level[st] < depth:  # the level of this cycle: a pop now makes no room
                active = True
                # the free slot: (read pointer + level) at the start of the cycle, pop or not
                q[st, (qh[st] + n_level[st]) % depth] = pc
                n_level[st] += 1
                pc += 1
                n_phase = FETCH
            else:
                stats[S_STALL_FETCH] += 1
        if not active:
            for s in range(NS):
                busy[s] = left[s] > 0
            _fill_diag(diag, pc, phase, q, qh, qh + level, cnt, busy, depth)
            return DEADLOCK, t, stats, diag
        phase = n_phase
        for s in range(NS):
            level[s] = n_level[s]
            left[s] = n_left[s]
        for c in range(NC):
            cnt[c] += d_cnt[c]
        t += 1
