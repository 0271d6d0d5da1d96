"""Pass 6, scheduling: the machine nodes -> the instruction stream with its tokens.

Three steps, each its own module:

1. `compiler/expand.py`: every node -> instructions in the four stage streams, with their
   dependencies (buffer rings, the accumulator snapshot, DRAM rows and reused bytes); VEC
   descriptors are written to the descriptor area after the DRAM image;
2. `compiler/merge.py program_order`: the streams interleaved into program order by a running
   estimate of the machine's timing (`meta["estimated_cycles"]`; the simulator is the authority);
3. `compiler/merge.py place_tokens`: each dependency the order does not imply becomes a token.

Every program the compiler writes passes `check_tokens` and the golden executor's strict token
mode (tests).
"""

from __future__ import annotations

import gc

import numpy as np

from bebert.config import AccelConfig

from .expand import Streams
from .ir import Graph
from .merge import flatten, place_tokens, program_order


def schedule_graph(g: Graph, config: AccelConfig) -> Graph:
    g.require("alloc", "schedule")
    enabled = gc.isenabled()
    gc.disable()   # hundreds of thousands of small records: the cyclic collector would rescan them all
    try:
        return _schedule(g, config)
    finally:
        if enabled:
            gc.enable()


def _schedule(g: Graph, config: AccelConfig) -> Graph:
    desc_base = -(-g.meta["dram_bytes"] // 64) * 64
    st = Streams(g, config, desc_base)
    st.build()
    flat = flatten(st.seq)
    order, cycles = program_order(st.seq, config, flat=flat)
    instrs = place_tokens(st.seq, order, flat)
    recs = [r for stream in st.seq for r in stream]
    stage_of = np.repeat(np.arange(4), flat["n"])
    g.meta["instrs"] = instrs
    g.meta["instr_nodes"] = [recs[x].node for x in order.tolist()]
    g.meta["instr_stages"] = stage_of[order].tolist()
    g.meta["estimated_cycles"] = cycles
    g.meta["desc_base"] = desc_base
    blob = bytearray()
    for d in st.descs:
        blob += d + bytes(-len(d) % 8)
    g.meta["descriptors"] = bytes(blob)
    g.stage = "schedule"
    return g
