"""The per-instruction settings of the tile engine, in Python: what the unit's setup derives in
hardware from a VEC word, its descriptor and its constant blocks (`bebert.vector`), and the
reference its tests hold the hardware to.

A *range* is ("s", b) (signed b-bit codes) or ("u", b) (unsigned); requantize's output step
is a range, or "sign" (obits = 1: +-1). Clamps to nested ranges compose to their
intersection, which is again a range: that is how one clamp in the lanes stands for several
of the reference's (the view's `sat`, a kernel's `in_bits`, int32; an output range and the
packed planes' range).
"""

from __future__ import annotations

from bebert.config import AccelConfig
from bebert.vector import Io, Packed, VecFn, View, io_fields, packed_pass

Range = tuple  # ("s" | "u", bits)


def thermo(width: int, p: int) -> int:
    """Ones at bit positions >= p of a `width`-bit mask."""
    p = max(p, 0)
    return 0 if p >= width else ((1 << width) - 1) & ~((1 << p) - 1)


def wrap(x: int, width: int) -> int:
    """x as a signed `width`-bit value (two's complement)."""
    x &= (1 << width) - 1
    return x - (1 << width) if x >> (width - 1) else x


def obits_range(obits: int, osigned: bool):
    """requantize's output step: 0 int32, 1 "sign", else a range."""
    if obits == 0:
        return ("s", 32)
    if obits == 1:
        return "sign"
    return ("s" if osigned else "u", obits)


def intersect(a: Range, b: Range) -> Range:
    if a[0] == b[0]:
        return (a[0], min(a[1], b[1]))
    s, u = (a, b) if a[0] == "s" else (b, a)
    return ("u", min(s[1] - 1, u[1]))


def lo_hi(r: Range) -> tuple[int, int]:
    kind, b = r
    return (-(1 << (b - 1)), (1 << (b - 1)) - 1) if kind == "s" else (0, (1 << b) - 1)


def clamp_vals(r, width: int, mask_width: int = 33) -> dict:
    """A `ClampConfig` / the range part of a `PostConfig`: mask, signed, lo, hi, force."""
    if r == "sign":
        return {"mask": 0, "signed": 1, "lo": -1, "hi": 1, "force": 1}
    kind, b = r
    lo, hi = lo_hi(r)
    return {"mask": thermo(mask_width, b - 1 if kind == "s" else b), "signed": int(kind == "s"),
            "lo": wrap(lo, width), "hi": wrap(hi, width), "force": 0}


def post_vals(k: int, shift: int, r, clip: Range | None = None) -> dict:
    """A `PostConfig(k)`: rnd(v, shift) into range r ("sign": +-1), then clipped to `clip`."""
    if r == "sign":
        lo, hi = -1, 1
        if clip:
            clo, chi = lo_hi(clip)
            lo, hi = min(max(lo, clo), chi), min(max(hi, clo), chi)
        c = {"signed": 1, "mask2": 0, "lo": lo, "hi": hi, "force": 1}
    else:
        rr = intersect(r, clip) if clip else r
        v = clamp_vals(rr, k + 1, k + 1)
        c = {"signed": v["signed"], "mask2": v["mask"], "lo": v["lo"], "hi": v["hi"], "force": 0}
    c.update({"shift": shift, "mask1": thermo(65, shift + k)})
    return c


def decode_vals(elem_code: int, is_signed: bool, sat_bits: int) -> dict:
    """A `DecodeConfig`: elem code (0, 1, 2; 3 = a row-memory word), saturation to S bits."""
    s = min(sat_bits, 32)
    return {"elem": elem_code, "signed": int(is_signed), "mask": thermo(33, s - 1), "lo": -(1 << (s - 1))}


def view_sat(v: View) -> int:
    return v.sat if v.sat else 64


def _elem_code(e: int) -> int:
    return {1: 0, 2: 1, 4: 2}[e]


def sm_derived(c: dict) -> tuple[int, int]:
    """(m2, th) of the softmax's step 2: m2 = min(scl(t_in_max, k), t_max), th = the largest
    t0 with scl(t0, k) <= m2 (t0 < 2^32)."""
    k, t_max = c["in_shift"], c["t_max"]
    t_in = min(c["t_in_max"], (1 << 32) - 1)
    scl = t_in << k if k >= 0 else (t_in + (1 << (-k - 1))) >> -k
    m2 = min(scl, t_max)
    th = m2 >> k if k >= 0 else ((m2 + 1) << -k) - (1 << (-k - 1)) - 1
    return m2, min(th, (1 << 34) - 1)


def tile_settings(args: dict, d: dict, consts: dict, config: AccelConfig) -> tuple[dict, dict]:
    """(TileConfig values, LaneConfig values) of a tile-engine VEC. `d` is the decoded
    descriptor (`bebert.vector.decode_desc`); `consts` maps each constant block's field
    name ("consts", "add_consts", "pout") to its {name: value} dict."""
    fn = VecFn(args["fn"])
    T, B = config.vec_lanes, config.dram_bytes_per_cycle
    stream_out, second, ein, eout = io_fields(args["io"])
    rq = packed_pass(fn, args["bits"])
    k = consts["consts"]
    two = fn == VecFn.ADD or (fn == VecFn.LAYERNORM and second)
    nin = 2 if two else 1
    a = d["a"] if "a" in d else d["src"]
    tc = {"kind": {VecFn.ADD: 0, VecFn.REQUANT: 1, VecFn.GELU: 2, VecFn.LAYERNORM: 3, VecFn.SOFTMAX: 4}[fn],
          "two": int(two), "masked": int(fn == VecFn.SOFTMAX and second), "rq": int(rq), "cols": args["cols"],
          "tiles": -(-args["rows"] // T), "step": max(nin, nin * T * ein // B),
          "ostep": max(1, T * eout // B) if stream_out else 1, "m1": 0, "m2": 0, "mrq": 0}
    add = consts.get("add_consts") if fn == VecFn.LAYERNORM and second else (k if fn == VecFn.ADD else None)
    if fn == VecFn.REQUANT:
        sat_a = min(view_sat(a), k["in_bits"])
        tc["m1"] = k["mult"]
        post = post_vals(33, k["shift"], obits_range(k["bits"], k["signed"]))
    elif fn == VecFn.ADD:
        sat_a = min(view_sat(a), k["in_bits"])
        post = post_vals(33, k["shift"], obits_range(k["out_bits"], k["out_signed"]))
    elif fn == VecFn.GELU:
        sat_a = view_sat(a)
        post = post_vals(33, k["shift"], obits_range(k["out_bits"], k["out_signed"]))
    elif fn == VecFn.LAYERNORM:
        sat_a = min(view_sat(a), add["in_bits"] if add else k["in_bits"])
        post = post_vals(33, k["shift"], obits_range(k["out_bits"], k["out_signed"]))
    else:
        sat_a = view_sat(a)
        post = post_vals(33, k["recip_shift"], obits_range(k["out_bits"], False))
    tc["dec_a"] = decode_vals(_elem_code(ein), a.signed, sat_a)
    tc["dec_b"] = tc["dec_a"]
    tc["post"] = post
    tc["post_add"] = post
    if add:
        b = d["b"]
        tc["dec_b"] = decode_vals(_elem_code(ein), b.signed, min(view_sat(b), add["in_bits"]))
        tc["m1"], tc["m2"] = add["mult1"], add["mult2"]
        r = obits_range(add["out_bits"], add["out_signed"])
        if fn == VecFn.LAYERNORM:     # the fused add's output, saturated to LAYERNORM's in_bits
            ln_in = ("s", k["in_bits"])
            tc["post_add"] = post_vals(33, add["shift"], r, clip=ln_in) if r != "sign" else \
                post_vals(33, add["shift"], r, clip=ln_in)
        else:
            tc["post"] = post_vals(33, add["shift"], r)
    tc["dec_r"] = tc["dec_a"]
    tc["post_rq"] = post
    bits = args["bits"]
    p: Packed | None = d.get("pout") if bits else None
    # the planes' range (+-1 planes: any range with both signs keeps z >= 0, the plane)
    plane = (("s", 2) if p.pm1 else ("s" if p.signed else "u", bits)) if p else None
    if rq:
        g = consts.get("pout") or {"mult": 1, "shift": 0, "bits": 0, "signed": 1, "in_bits": 32}
        tc["dec_r"] = decode_vals(3, True, g["in_bits"])
        tc["mrq"] = g["mult"]
        tc["post_rq"] = post_vals(33, g["shift"], obits_range(g["bits"], g["signed"]), clip=plane)
    lc = _lane_settings(fn, args, d, k, stream_out, eout, p, plane)
    return tc, lc


def _lane_settings(fn, args, d, k, stream_out, eout, p, plane) -> dict:
    zero_gelu = {"q": 0, "k": 0, "b": 0, "c2": 0, "mult": 0}
    lc = {"gelu": zero_gelu, "ln": {"h": 0, "ds": 0, "sh": 30, "eps": 0},
          "sm": {"th": 0, "m2": 0, "k": 0, "dm": 0, "dsh": 0, "ln2": 0, "pb": 0, "pc": 0}, "rnum": 0}
    if fn == VecFn.GELU:
        lc["gelu"] = {"q": k["in_clamp"], "k": max(k["in_shift"], -64), "b": k["erf_b"], "c2": 2 * k["erf_c"],
                      "mult": k["mult"]}
    elif fn == VecFn.LAYERNORM:
        lc["ln"] = {"h": args["cols"], "ds": k["d_shift"], "sh": 60 - k["norm_bits"], "eps": k["eps"]}
    elif fn == VecFn.SOFTMAX:
        m2, th = sm_derived(k)
        lc["sm"] = {"th": th, "m2": m2, "k": k["in_shift"], "dm": k["div_mult"], "dsh": k["div_shift"],
                    "ln2": k["ln2"], "pb": k["poly_b"], "pc": k["poly_c"]}
        lc["rnum"] = k["recip_num"]
    out = d.get("out") if stream_out else None
    if out is not None:
        r = ("s" if out.signed else "u", min(8 * eout, 32))
    else:
        r = ("s", 32)
    lc["scfg"] = clamp_vals(r, 32)
    lc["ccfg"] = clamp_vals(plane if plane else ("s", 8), 8)
    lc["pm1"] = int(bool(p and p.pm1))
    return lc


__all__ = ["Io", "clamp_vals", "decode_vals", "post_vals", "sm_derived", "thermo", "tile_settings"]
