"""The row-word packer: codes in one column at a time, packed bit-plane row-words out, one beat at a time."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


RUN_BITS = 4  # rd_run: log2 of a chunk's row-words (values past log2(B / W) read whole beats)


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _is_pow2(n: int) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n > 0 and n & (n - 1) == 0


def _bits(n: int) -> int:
    """Width of an index into n things (at least 1, so that every port exists)."""
    return max(1, (n - 1).bit_length())


class Packer(wiring.Component):
    """`planes` x `words` W-bit row-word registers, filled by shifting codes in at the top.

    Built from flip-flops with clock enables (a shift register needs no LUT per bit; a masked
    row's top bit is a synchronous reset, the clear too): the LUTs are the read multiplexers.

    Parameters: `rows` (R: codes per shift, one per tile row), `planes` (P >= 1), `width` (W),
    `bus_bits` (B), and `transpose_cols` (C, optional: enables the transposed view for tiles of
    R rows x C columns). R, W, B, C powers of two, R <= W and C <= W. Words per plane: N = H * R
    with H = max(1, C // R) *groups* of R words (H = 1 without `transpose_cols`); group h's
    word r takes row r's code.

    **Shift** (cycle with `shift[h]` high, `clear` low): every word (h*R + r, p) of group h
    with `hold[p]` low becomes `(word >> 1) | (bit << (W - 1))` with bit = bit p of `codes[r]`
    if `mask[r]` else 0: one code per row shifts in at the top of its plane words, masked-off
    rows shift zeros, held planes keep their words (the output path holds planes >= obits).
    After n shifts since a clear the i-th shifted code is at bit W - n + i, zeros below, which
    is the layout's partial-word rule (`bebert.layout`, "Partial words").
    **Clear** (`clear`, priority over `shift`): every word becomes 0 at the end of the cycle.

    **Row-word read** (combinational; `rd_transposed` low): `rd_data` is one B-bit beat of plane
    `rd_plane`'s packed words (word w at bits [wW, (w+1)W) of the plane, w < N):
    - W >= B: bits [rd_part * B, (rd_part + 1) * B) of row-word `rd_word`;
    - W < B: a *chunk* of n = 2^min(rd_run, log2(B / W)) row-words starting at `rd_word` (a
      multiple of n), repeated across the beat: beat word q (bits [qW, (q+1)W)) is row-word
      (rd_word rounded down to n) + q mod n. With n = B / W that is the aligned beat itself;
      a shorter run lands wherever its DRAM address puts it, under the writer's byte strobes.

    **Transposed view** (`transpose_cols` = C): for tiles of R rows x C columns stepped in
    column order, where column c's step shifts group c // R only (`shift` = 1 << (c // R)) when
    C > R, every group when C <= R, with `mask` = the rows valid in column c (all low for an
    invalid column). After n such tiles (n <= W / R) since a clear, transposed word c < C of
    plane p holds bit p of code(tile t, row r, column c) at bit W - n*R + t*R + r, zeros below:
    column c's R codes shifted in together at its top, tile after tile (V^T as a WBUF operand).
    The words are a fixed permutation of group c // Q's R row-words, Q = min(R, C): a writer
    reads them through the *transposer*, an R*W-bit register loaded one beat per cycle from the
    row-word read: a cycle with `tload` (and `rd_transposed` low) stores the first min(B, R*W)
    bits of `rd_data` in slot (`rd_word` * max(1, W / B) + `rd_part`) or `rd_word` // (B / W),
    modulo max(1, R*W / B); a writer loads runs of R words (`rd_run` = log2 R). Once the R
    row-words of group h and plane p are loaded, `rd_transposed` high reads transposed words
    h*Q .. h*Q + Q - 1 as a row-word read of a plane of Q words would (`rd_word` = c, `rd_run`,
    `rd_part`; `rd_plane` ignored). So a writer flushes plane by plane (and group by group):
    max(1, R*W / B) loads, then the transposed beats.

    Ports: `shift` In(H), `mask` In(R), `hold` In(P), `codes` In(R x P bits, code r at bits
    [rP, (r+1)P)),
    `clear`, `tload` In(1); `rd_plane`, `rd_word`, `rd_part`, `rd_run`, `rd_transposed` In,
    `rd_data` Out(B). `rd_run` is 4 bits; unused read fields (a single plane's `rd_plane`, `rd_part` when
    W <= B, ...) are 1 bit wide and ignored.
    """

    def __init__(self, rows: int, planes: int, width: int, bus_bits: int, *, transpose_cols: int | None = None):
        for name, v in (("rows", rows), ("width", width), ("bus_bits", bus_bits)):
            if not _is_pow2(v):
                raise ValueError(f"Packer: {name} must be a power of two, got {v!r}")
        if not isinstance(planes, int) or isinstance(planes, bool) or planes < 1:
            raise ValueError(f"Packer: planes must be a positive integer, got {planes!r}")
        if transpose_cols is not None and not _is_pow2(transpose_cols):
            raise ValueError(f"Packer: transpose_cols must be a power of two, got {transpose_cols!r}")
        if rows > width or (transpose_cols or 1) > width:
            raise ValueError(f"Packer: rows ({rows}) and transpose_cols ({transpose_cols}) must not exceed "
                             f"width ({width}): a tile's rows / columns fit one word")
        self.rows, self.planes, self.width, self.bus_bits = rows, planes, width, bus_bits
        self.transpose_cols = transpose_cols
        cols = transpose_cols or rows
        self.groups = max(1, cols // rows) if transpose_cols else 1
        self.words = self.groups * rows
        self.q = min(rows, cols)  # positions a tile takes per word in the transposed layout
        self.wpb = max(1, bus_bits // width)  # row-words per beat
        self.parts = max(1, width // bus_bits)  # beats per row-word
        view_words = max(rows, cols)
        super().__init__({
            "shift": In(self.groups), "mask": In(rows), "hold": In(planes),
            "codes": In(data.ArrayLayout(unsigned(planes), rows)),
            "clear": In(1), "tload": In(1),
            "rd_plane": In(_bits(planes)), "rd_word": In(_bits(view_words)), "rd_part": In(_bits(self.parts)),
            "rd_run": In(RUN_BITS), "rd_transposed": In(1),
            "rd_data": Out(bus_bits),
        })

    def elaborate(self, platform):
        m = Module()
        R, P, W = self.rows, self.planes, self.width
        body = [[Signal(W - 1, name=f"word_{w}_{p}") for p in range(P)] for w in range(self.words)]
        top = [Signal(P, name=f"top_{w}") for w in range(self.words)]
        for w in range(self.words):
            h, r = divmod(w, R)
            for p in range(P):
                go = self.shift[h] & ~self.hold[p]
                with m.If(self.clear):
                    m.d.sync += body[w][p].eq(0)
                with m.Elif(go):
                    m.d.sync += body[w][p].eq(Cat(body[w][p][1:], top[w][p]))
                # The top bit: a masked-off row is a synchronous reset, not a multiplexer.
                with m.If(self.clear | (go & ~self.mask[r])):
                    m.d.sync += top[w][p].eq(0)
                with m.Elif(go):
                    m.d.sync += top[w][p].eq(self.codes[r][p])
        words = [[Cat(body[w][p], top[w][p]) for w in range(self.words)] for p in range(P)]
        beat = self._beat(m, words, self.rd_plane, self.rd_word, "n")
        if self.transpose_cols is None:
            m.d.comb += self.rd_data.eq(self._repeat(m, beat, self.rd_word))
            return m
        normal = Signal(self.bus_bits, name="normal")
        m.d.comb += normal.eq(self._repeat(m, beat, self.rd_word))
        held = self._transposer(m, normal)
        tbeat = self._beat(m, [held], Const(0, 1), self.rd_word % self.q, "t")
        transposed = self._repeat(m, tbeat, self.rd_word % self.q, "t")
        m.d.comb += self.rd_data.eq(Mux(self.rd_transposed, transposed, normal))
        return m

    def _transposer(self, m, normal):
        """The transposer: R*W bits loaded a beat at a time (`tload`) from the row-word read;
        returns its Q transposed words (fixed wiring: transposed word c' bit W-1-o is the held
        row-word R-1-(o % R) at offset (o // R) * Q + Q - 1 - c' from its top)."""
        R, W, Q, B = self.rows, self.width, self.q, self.bus_bits
        beat_bits = min(B, R * W)  # a group narrower than a beat: its run of R words
        slots = R * W // beat_bits
        held = [Signal(beat_bits, name=f"held{i}") for i in range(slots)]
        if W >= B:
            slot = self.rd_word * self.parts + self.rd_part[:_bits(self.parts)]
        else:
            slot = self.rd_word // self.wpb
        for i in range(slots):
            with m.If(self.tload & ((slot % slots) == i)):
                m.d.sync += held[i].eq(normal[:beat_bits])
        flat = Cat(*held)
        row = [flat[r * W:(r + 1) * W] for r in range(R)]
        out = []
        for c in range(Q):
            bits = []
            for b in range(W):
                o = W - 1 - b
                src = (o // R) * Q + Q - 1 - c
                bits.append(row[R - 1 - o % R][W - 1 - src] if src < W else Const(0, 1))
            out.append(Cat(*bits))
        return out

    def _beat(self, m, words, plane, index, tag: str):
        """The beat of words[plane] that holds word `index` (W < B: its wpb words; W >= B: the
        part `rd_part` of the word, as a one-element list)."""
        W, B, wpb = self.width, self.bus_bits, self.wpb
        n, planes = len(words[0]), len(words)

        def key(i):  # the case number of (plane, i): the plane above i (i already sliced)
            return Cat(i, plane[:_bits(planes)]) if planes > 1 else i

        if W >= B:
            chosen = Signal(W, name=f"{tag}_word")
            with m.Switch(key(index[:_bits(n)])):
                for p, ws in enumerate(words):
                    for i, v in enumerate(ws):
                        with m.Case(p << _bits(n) | i):
                            m.d.comb += chosen.eq(v)
            return [chosen.word_select(self.rd_part[:_bits(self.parts)], B) if self.parts > 1 else chosen]
        beats = max(1, n // wpb)
        out = [Signal(W, name=f"{tag}_beat{q}") for q in range(wpb)]
        with m.Switch(key((index // wpb)[:_bits(beats)])):
            for p, ws in enumerate(words):
                for b in range(beats):
                    with m.Case(p << _bits(beats) | b):
                        m.d.comb += [out[q].eq(ws[b * wpb + q] if b * wpb + q < n else 0) for q in range(wpb)]
        return out

    def _repeat(self, m, beat, index, tag: str = "n"):
        """W < B: a run of 2^rd_run < wpb words repeats across the beat (beat word q is run word
        q mod n, the run holding word `index`)."""
        wpb = self.wpb
        if len(beat) == 1:
            return beat[0]
        run = Signal(range(_log2(wpb) + 1), name=f"{tag}_run")
        m.d.comb += run.eq(Mux(self.rd_run >= _log2(wpb), _log2(wpb), self.rd_run))
        lane = index % wpb
        out = []
        for q in range(wpb):
            pick = Signal(range(wpb), name=f"{tag}_pick{q}")
            with m.Switch(run):
                for k in range(_log2(wpb) + 1):
                    low = (1 << k) - 1
                    with m.Case(k):
                        m.d.comb += pick.eq((lane & ((wpb - 1) & ~low)) | (q & low))
            out.append(Array(beat)[pick])
        return Cat(*out)
