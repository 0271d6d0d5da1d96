"""The accelerator configuration: the one description of the machine.

Compiler, simulator and RTL all read an `AccelConfig`; none of them re-declares
a buffer size or an array dimension. It is pure Python on purpose (no Amaranth,
no Numba) so that every part of the toolkit can import it.

The configuration is validated once, when it is built (`AccelConfig(...)`,
`AccelConfig.from_toml`, `AccelConfig.from_dict`); a bad value raises
`ConfigError` with one line naming the field and the rule it breaks.

Derived quantities (entry widths, entry counts, beats per entry) are properties
so that they can never disagree with the fields they come from.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """An accelerator configuration that the hardware cannot take."""


# Fixed-point widths of the post-processing unit (part of the numeric contract).
ACC_BITS = 32  # signed accumulator per PE
PARAM_BITS = 64  # one (multiplier:int32, bias:int32) pair per output channel

# Microarchitecture timing constants (see docs/ARCHITECTURE.md, "Timing").
GEMM_PIPELINE_CYCLES = 2  # buffer read + popcount register, then the accumulate register
SNAP_CYCLES = GEMM_PIPELINE_CYCLES + 1  # a snap GEMM drains its pipeline, then copies the accumulators
POST_PIPELINE_CYCLES = 4  # PBUF read, then the three lane stages: column select + row add, multiply, round + clamp
POSTCFG_CYCLES = 1
SYNC_CYCLES = 1
MAX_ACT_BITS = 8  # bit-planes of an activation operand (GEMM bits / wbits, packed outputs)

_POW2 = {1 << i for i in range(32)}


def _is_pow2(v: int) -> bool:
    return v in _POW2


@dataclass(frozen=True)
class AccelConfig:
    """One XNOR-popcount accelerator.

    The PE array has `pe_rows` x `pe_cols` processing elements. Every cycle each PE
    combines one `xnor_width`-bit activation bit-plane word (its row) with one
    `xnor_width`-bit weight-sign word (its column) and adds the popcount result,
    shifted by the bit-plane's significance, to its 32-bit accumulator. The output path
    post-processes a snapshot of the accumulators and writes DRAM in its consumer's layout.
    The vector unit has `vec_lanes` lanes, one per row of its row tile (and of the stream
    layout's row tiles); each lane's row memory holds `vec_row_elems` elements (the longest
    LAYERNORM / SOFTMAX row). Every DRAM port moves `dram_bytes_per_cycle` bytes per cycle.
    """

    name: str = "default"
    pe_rows: int = 16
    pe_cols: int = 16
    xnor_width: int = 64
    act_bits: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    abuf_bytes: int = 128 * 1024
    wbuf_bytes: int = 64 * 1024
    pbuf_bytes: int = 8 * 1024
    dram_bytes_per_cycle: int = 32
    dram_latency_cycles: int = 32
    queue_depth: int = 8
    vec_lanes: int = 16  # vector lanes = rows of a row tile (and of the stream layout's tiles)
    vec_row_elems: int = 1024  # each lane's row memory (LAYERNORM, SOFTMAX): longest row
    clock_mhz: float = 200.0

    def __post_init__(self) -> None:
        bits = self.act_bits
        if not isinstance(bits, (list, tuple)) or not all(isinstance(b, int) and not isinstance(b, bool)
                                                          for b in bits):
            raise ConfigError(f"config '{self.name}': act_bits must be a list of integers, got {bits!r}")
        object.__setattr__(self, "act_bits", tuple(bits))
        self._validate()

    # -- validation ---------------------------------------------------------------
    def _validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"config '{self.name}': {msg}")

        need(isinstance(self.name, str) and bool(self.name), f"name must be a non-empty string, got {self.name!r}")
        for f in ("pe_rows", "pe_cols", "xnor_width", "abuf_bytes", "wbuf_bytes", "pbuf_bytes",
                  "dram_bytes_per_cycle", "dram_latency_cycles", "queue_depth", "vec_lanes", "vec_row_elems"):
            v = getattr(self, f)
            need(isinstance(v, int) and not isinstance(v, bool), f"{f} must be an integer, got {v!r}")
            need(v > 0, f"{f} must be positive, got {v}")
        need(self.pe_rows <= 64 and _is_pow2(self.pe_rows), f"pe_rows must be a power of two <= 64, got {self.pe_rows}")
        need(self.pe_cols <= 64 and _is_pow2(self.pe_cols), f"pe_cols must be a power of two <= 64, got {self.pe_cols}")
        need(self.xnor_width in (8, 16, 32, 64, 128, 256),
             f"xnor_width must be one of 8, 16, 32, 64, 128, 256, got {self.xnor_width}")
        need(isinstance(self.act_bits, tuple) and len(self.act_bits) > 0
             and all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= MAX_ACT_BITS
                     for b in self.act_bits),
             f"act_bits must be a non-empty list of integers in 1..{MAX_ACT_BITS}, got {self.act_bits!r}")
        need(self.pe_rows <= self.xnor_width and self.pe_cols <= self.xnor_width,
             f"pe_rows ({self.pe_rows}) and pe_cols ({self.pe_cols}) must not exceed xnor_width "
             f"({self.xnor_width}): a tile's rows and columns fit one packed word")
        need(self.vec_lanes <= 64 and _is_pow2(self.vec_lanes),
             f"vec_lanes must be a power of two in 1..64, got {self.vec_lanes}")
        need(_is_pow2(self.dram_bytes_per_cycle) and self.dram_bytes_per_cycle <= 128,
             f"dram_bytes_per_cycle must be a power of two <= 128, got {self.dram_bytes_per_cycle}")
        need(self.dram_latency_cycles <= 4096, f"dram_latency_cycles must be <= 4096, got {self.dram_latency_cycles}")
        need(2 <= self.vec_row_elems <= 65535,
             f"vec_row_elems must be in [2, 65535] (a VEC's cols field is 16 bits), got {self.vec_row_elems}")
        need(2 <= self.queue_depth <= 64, f"queue_depth must be in [2, 64], got {self.queue_depth}")
        need(isinstance(self.clock_mhz, (int, float)) and not isinstance(self.clock_mhz, bool)
             and 0 < self.clock_mhz <= 2000,
             f"clock_mhz must be in (0, 2000], got {self.clock_mhz}")
        bus = self.bus_bits
        for buf, entry_bits in self.entry_bits.items():
            need(entry_bits % bus == 0,
                 f"{buf} entry ({entry_bits} bits) must be a multiple of the DRAM bus width "
                 f"({bus} bits = dram_bytes_per_cycle * 8)")
            nbytes = getattr(self, f"{buf}_bytes")
            need(nbytes % (entry_bits // 8) == 0,
                 f"{buf}_bytes ({nbytes}) must be a multiple of its entry size ({entry_bits // 8} bytes)")
            entries = nbytes // (entry_bits // 8)
            need(entries >= 2, f"{buf}_bytes ({nbytes}) holds {entries} entries; at least 2 are needed")
            need(entries <= 1 << 20, f"{buf}_bytes ({nbytes}) holds {entries} entries; at most 2^20 are addressable")
            need(_is_pow2(entries), f"{buf}_bytes ({nbytes}) holds {entries} entries; the count must be a "
                                    f"power of two (buffer addresses wrap by dropping high bits)")

    # -- derived quantities -------------------------------------------------------
    @property
    def bus_bits(self) -> int:
        """Width of the DRAM data bus: one beat per cycle."""
        return self.dram_bytes_per_cycle * 8

    @property
    def entry_bits(self) -> dict[str, int]:
        """Width of one entry (one word of the compute-side port) of each buffer."""
        return {
            "abuf": self.pe_rows * self.xnor_width,  # one bit-plane word per array row
            "wbuf": self.pe_cols * self.xnor_width,  # one sign word per array column
            "pbuf": self.pe_cols * PARAM_BITS,  # (multiplier, bias) per column
        }

    def entry_bytes(self, buf: str) -> int:
        return self.entry_bits[buf] // 8

    def entries(self, buf: str) -> int:
        return getattr(self, f"{buf}_bytes") // self.entry_bytes(buf)

    def beats_per_entry(self, buf: str) -> int:
        return self.entry_bits[buf] // self.bus_bits

    @property
    def abuf_entries(self) -> int:
        return self.entries("abuf")

    @property
    def wbuf_entries(self) -> int:
        return self.entries("wbuf")

    @property
    def pbuf_entries(self) -> int:
        return self.entries("pbuf")

    @property
    def binary_ops_per_cycle(self) -> int:
        """Peak 1-bit multiply-accumulates per cycle (one per activation bit-plane bit)."""
        return self.pe_rows * self.pe_cols * self.xnor_width

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    # -- I/O ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["act_bits"] = list(self.act_bits)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "AccelConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a table of accelerator parameters")
        d = _accelerator_table(d, source)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown parameter(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        try:
            return cls(**d)
        except TypeError as e:  # wrong value types that dataclass init rejects
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "AccelConfig":
        p = Path(path)
        d = _accelerator_table(read_toml(p, ConfigError, "config file"), str(p))
        if not set(d) - {"name"}:
            raise ConfigError(f"{p}: sets no accelerator parameter (an empty config is not the default one: "
                              "leave out --config for that)")
        d.setdefault("name", p.stem)
        return cls.from_dict(d, source=str(p))

    def replace(self, **changes: Any) -> "AccelConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"config '{self.name}': unknown parameter(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


BUFFERS = ("abuf", "wbuf", "pbuf")


def _accelerator_table(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The parameters of a config document: its [accelerator] table, or the document itself."""
    if "accelerator" not in data:
        return dict(data)
    if not isinstance(data["accelerator"], dict):
        raise ConfigError(f"{source}: 'accelerator' must be a table ([accelerator]), got {data['accelerator']!r}")
    extra = sorted(set(data) - {"accelerator"})
    if extra:
        raise ConfigError(f"{source}: unknown table or key(s) {', '.join(extra)} beside [accelerator]")
    return dict(data["accelerator"])


def read_toml(path: str | Path, error: type[Exception], what: str) -> dict[str, Any]:
    """A TOML file as a dict, or `error` with one line if it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} not found: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(f"{p}: not valid TOML ({e})") from None
