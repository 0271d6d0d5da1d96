"""OUTPUT stage: POSTCFG and POST (snapshot -> requantize -> DRAM in the consumer's layout), SYNC."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.config import ACC_BITS, MAX_ACT_BITS, POST_PIPELINE_CYCLES, POSTCFG_CYCLES, SYNC_CYCLES, AccelConfig
from bebert.isa import FIELDS, Op, PostFmt, Stage

from .buffer import address_bits
from .decoder import field
from .issue import StageIssuer, StageSignature
from .packer import Packer
from .ports import buffer_read, snapshot_port, write_port
from .post_sequencer import PostSequencer
from .requantize import MODE_LAYOUT, VALUE_BITS, RequantLanes, lane_mode

_MODE_FIELDS = tuple(FIELDS[Op.POSTCFG])
_POST_FIELDS = ("p", "dram", "cols", "rows", "flush")


class Snapshot(wiring.Component):
    """The OUTPUT stage's copy of the accumulators: R x C int32 `acc` and R int32 `row`, taken
    from `snapshot` at the end of a cycle with `snapshot.snap`. `col_acc[r]` = acc[r][col] and
    `col_row[r]` = row[r] (combinational): one column for the lanes."""

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        word = data.ArrayLayout(signed(ACC_BITS), rows)
        super().__init__({"snapshot": In(snapshot_port(rows, cols)), "col": In(range(max(2, cols))),
                          "col_acc": Out(word), "col_row": Out(word)})

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        acc = Signal(R * C * ACC_BITS)
        row = Signal(R * ACC_BITS)
        with m.If(self.snapshot.snap):
            m.d.sync += [acc.eq(self.snapshot.acc), row.eq(self.snapshot.row)]
        for r in range(R):
            words = [acc[ACC_BITS * (r * C + c):ACC_BITS * (r * C + c + 1)] for c in range(C)]
            with m.Switch(self.col):
                for c, w in enumerate(words):
                    with m.Case(c):
                        m.d.comb += self.col_acc[r].eq(w)
            m.d.comb += self.col_row[r].eq(row[ACC_BITS * r:ACC_BITS * (r + 1)])
        return m


class StreamBeat(wiring.Component):
    """One write beat of a tile column in the stream layout (combinational).

    `values[r]` are the column's R results (e = 1 << `elem` bytes each, already saturated to
    the element). The column's bytes are element r at bytes [r e, (r + 1) e); with T' =
    min(R, T) they form R / T' runs of T' e bytes (one per row tile) of S = min(T' e, B / 8)
    byte *chunks*. Beat `beat` of the column carries chunk `beat`, repeated across the beat;
    `strb` enables the chunk's bytes at their DRAM place (`offset` = the run address modulo
    B / 8, a multiple of S: the compiler aligns runs to their size) for rows < `rows`.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        R = config.pe_rows
        super().__init__({"values": In(data.ArrayLayout(VALUE_BITS, R)), "elem": In(2),
                          "beat": In(range(max(2, 4 * R))), "rows": In(range(R + 1)),
                          "offset": In(range(max(2, config.dram_bytes_per_cycle))),
                          "data": Out(config.bus_bits), "strb": Out(config.dram_bytes_per_cycle)})

    @staticmethod
    def chunk_bytes(config: AccelConfig, e: int) -> int:
        return min(min(config.pe_rows, config.vec_lanes) * e, config.dram_bytes_per_cycle)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, Bb = cfg.pe_rows, cfg.dram_bytes_per_cycle
        valid = [r < self.rows for r in range(R)]  # rows of the tile that are written
        data, strb = [], []
        for elem in range(3):
            e = 1 << elem
            S = self.chunk_bytes(cfg, e)
            col = Cat(*[self.values[r][:8 * e] for r in range(R)])
            col_valid = Cat(*[valid[y // e] for y in range(R * e)])
            chunk = Signal(8 * S, name=f"chunk{e}")
            chunk_valid = Signal(S, name=f"chunk{e}_valid")
            with m.Switch(self.beat):
                for k in range(R * e // S):
                    with m.Case(k):
                        m.d.comb += [chunk.eq(col[8 * S * k:8 * S * (k + 1)]), chunk_valid.eq(col_valid[S * k:S * (k + 1)])]
            here = [(x // S) == (self.offset // S) for x in range(Bb)]
            data.append(Cat(*[chunk] * (Bb // S)))
            strb.append(Cat(*[chunk_valid[x % S] & here[x] for x in range(Bb)]))
        with m.Switch(self.elem):
            for elem in range(3):
                with m.Case(elem):
                    m.d.comb += [self.data.eq(data[elem]), self.strb.eq(strb[elem])]
        return m


class OutputStage(wiring.Component):
    """Executes POSTCFG, POST and SYNC from the head of the OUTPUT queue (`ctl`).

    POSTCFG (D = POSTCFG_CYCLES) sets the mode registers (its fields) for the POSTs after it.
    The accumulators arrive on `snapshot` (`hw/ports.py snapshot_port`) and are copied into the
    `Snapshot` register on its `snap` pulse, whatever the stage is doing. A POST issued in t
    reads PBUF entry p in t+1 (`pbuf`) and then streams the tile's columns through R lanes of
    `requantize` (`RequantLanes`, three stages) into the write stage, which writes them over
    `owr` (single beats, byte strobes, `StreamBeat`) or shifts them into the `Packer` and, with
    flush, writes its words (`PostSequencer` has the schedule). Its duration at the nominal
    memory is `bebert.timing.post_cycles`: POST_PIPELINE_CYCLES (the PBUF read and the three
    lane stages) + one cycle per write beat (stream) or per column and write beat (packed,
    transposed adds its transposer loads) + L when it pushes to LOAD or VECTOR and wrote
    something (it then waits for every write response, in order). The stage keeps the count
    by its own schedule: the issuer gets D = 1 and `hold` until the POST's last cycle; a slower
    memory (`owr.ready` low, late responses) stretches it and changes nothing else.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"OutputStage needs an AccelConfig, got {type(config).__name__}")
        if POST_PIPELINE_CYCLES != 4 or POSTCFG_CYCLES != 1 or SYNC_CYCLES != 1:
            raise ValueError("OutputStage implements a 4-cycle POST pipeline (PBUF read, three lane stages) "
                             "and 1-cycle POSTCFG / SYNC; bebert/config.py says otherwise")
        self.config = config
        R, C = config.pe_rows, config.pe_cols
        super().__init__({
            "ctl": Out(StageSignature),
            "pbuf": Out(buffer_read(config.entry_bits["pbuf"], address_bits(config, "pbuf"))),
            "snapshot": In(snapshot_port(R, C)),
            "owr": Out(write_port(config.bus_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
        m.submodules.issuer = iss = StageIssuer()
        m.submodules.snap = snap = Snapshot(R, C)
        m.submodules.lanes = lanes = RequantLanes(R)
        m.submodules.beat = beat = StreamBeat(cfg)
        m.submodules.packer = pk = Packer(R, MAX_ACT_BITS, W, cfg.bus_bits, transpose_cols=C)
        m.submodules.seq = seq = PostSequencer(cfg)
        wiring.connect(m, wiring.flipped(self.ctl), iss.ctl)
        wiring.connect(m, wiring.flipped(self.snapshot), snap.snapshot)
        word = self.ctl.head.word
        opcode = word[0:8]

        # POSTCFG: the raw mode fields, and the lane constants derived from them a cycle later.
        mode = {n: Signal(len(field(word, Op.POSTCFG, n)), name=f"mode_{n}") for n in _MODE_FIELDS}
        with m.If(iss.issue & (opcode == Op.POSTCFG)):
            m.d.sync += [mode[n].eq(field(word, Op.POSTCFG, n)) for n in _MODE_FIELDS]
        consts = lane_mode(m, stream=mode["fmt"] == PostFmt.STREAM, elem=mode["elem"], shift=mode["shift"],
                           obits=mode["obits"], osigned=mode["osigned"], pm1=mode["pm1"])
        lane_consts = Signal(MODE_LAYOUT)
        m.d.sync += [getattr(lane_consts, k).eq(v) for k, v in consts.items()]

        # POST: the sequencer runs it; the issuer holds until its last cycle.
        is_post = opcode == Op.POST
        tells = (word[12:16] & ((1 << Stage.LOAD) | (1 << Stage.VECTOR))) != 0
        m.d.comb += [
            iss.duration.eq(1), iss.hold.eq(seq.busy & ~seq.finish),
            seq.start.eq(iss.issue & is_post), seq.tells.eq(tells),
            *[getattr(seq, n).eq(field(word, Op.POST, n)) for n in _POST_FIELDS],
            *[getattr(seq, f"mode_{n}").eq(mode[n]) for n in ("fmt", "elem", "obits", "pitch", "gstride", "group")],
            self.pbuf.en.eq(seq.pbuf_en), self.pbuf.addr.eq(seq.pbuf_addr),
        ]

        # The lanes: column `seq.feed_col` of the snapshot with that column's (mult, bias).
        pcol = Signal(64)
        with m.Switch(seq.feed_col):
            for c in range(C):
                with m.Case(c):
                    m.d.comb += pcol.eq(self.pbuf.data[64 * c:64 * (c + 1)])
        m.d.comb += [
            snap.col.eq(seq.feed_col),
            lanes.adv.eq(seq.adv), lanes.in_valid.eq(seq.feed_valid), lanes.acc.eq(snap.col_acc),
            lanes.row.eq(snap.col_row), lanes.mult.eq(pcol[:32]), lanes.bias.eq(pcol[32:]), lanes.mode.eq(lane_consts),
            seq.out_valid.eq(lanes.out_valid),
        ]

        # The write stage: stream beats, or codes into the packer and its words out.
        m.d.comb += [
            beat.values.eq(lanes.value), beat.elem.eq(mode["elem"]), beat.beat.eq(seq.beat),
            beat.rows.eq(seq.valid_rows),
            beat.offset.eq(seq.owr_addr[:(cfg.dram_bytes_per_cycle - 1).bit_length()] if cfg.dram_bytes_per_cycle > 1 else 0),
            pk.shift.eq(seq.pk_shift), pk.mask.eq(seq.pk_mask), pk.clear.eq(seq.pk_clear), pk.tload.eq(seq.pk_tload),
            pk.codes.eq(Cat(*[lanes.value[r][:MAX_ACT_BITS] for r in range(R)])),
            pk.rd_plane.eq(seq.rd_plane), pk.rd_word.eq(seq.rd_word), pk.rd_part.eq(seq.rd_part),
            pk.rd_run.eq(seq.rd_run), pk.rd_transposed.eq(seq.rd_transposed),
            self.owr.valid.eq(seq.owr_valid), seq.owr_ready.eq(self.owr.ready), seq.owr_resp.eq(self.owr.resp_valid),
            self.owr.addr.eq(seq.owr_addr & ~(cfg.dram_bytes_per_cycle - 1)),
            self.owr.data.eq(Mux(seq.streaming, beat.data, pk.rd_data)),
            self.owr.strb.eq(Mux(seq.streaming, beat.strb, seq.pk_strb)),
        ]
        return m
