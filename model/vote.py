"""The ensemble's vote in integers only: what `bebert eval --integer` computes and an accelerator can.

Every member's integer path ends in int64 classifier accumulators acc (labels,) on a per-class
grid cls_scale (model/integer_path.py). The vote (docs/NUMERICS.md, "Ensemble vote"):

1. logit codes: l_c = POST(acc_c; mult_c, bias 0, shift, int32) (bebert/numerics.py requantize,
   obits 0, saturating), Q15.16: l_c ~ acc_c cls_scale_c 2^16. One (mult, shift) set per member
   from its cls_scale: the classes of all members now share one grid, 2^-16.
2. fixed-point alphas: A_m = max(1, floor(alpha_m 2^16 + 1/2)) for alpha_m > 0 (a member no
   better than chance keeps its tiny vote), 0 for alpha_m = 0; unsigned Q.16, A_m < 2^22
   (alpha < 64; SAMME's alphas stay below 25 with err clipped at 1e-10).
3. the vote, all in int64, ties to the lowest class index / member order:
     samme    member class c_m = argmax_c l_mc; V_c = sum_m A_m [c_m = c]; prediction argmax_c V_c
     samme.r  S_c = sum_m l_mc (the log-softmax's per-member constant cancels); argmax_c S_c
     average  p_mc = i-softmax(l_m) (bebert/integer_ops.py, input grid 2^-16, 16-bit output on
              1/(2^16 - 1)); P_c = sum_m A_m p_mc; argmax_c P_c
     mean     (STS-B) s = floor((2 sum_m A_m l_m + T) / (2 T)), T = sum_m A_m: Q15.16 score
     median   (STS-B, AdaBoost.R2) the smallest l_m (stable order) with 2 sum_{l_j <= l_m} A_j >= T
   Bounds: |l| < 2^31 and A < 2^22 give |A l| < 2^53, and 64 members stay below 2^59.

The float dequantizations (l 2^-16) exist only for reporting; predictions are integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bebert import integer_ops as I
from bebert.numerics import fixed_point, requantize
from bebert.vector import VOTE_ALPHA_LIMIT, VOTE_LOGIT_FRAC, VOTE_SOFTMAX

ALPHA_FRAC = 16
ALPHA_LIMIT = VOTE_ALPHA_LIMIT
LOGIT_FRAC = VOTE_LOGIT_FRAC
CLASS_VOTES = ("samme", "samme.r", "average")
SCORE_VOTES = ("mean", "median")


@dataclass(frozen=True)
class MemberLogits:
    """acc -> Q15.16 logit codes of one member: requantize(acc, mult, 0, shift, 0)."""

    mult: tuple[int, ...]   # int32 per class
    shift: int


@dataclass(frozen=True)
class EnsembleVote:
    method: str                         # one of CLASS_VOTES or SCORE_VOTES
    alpha_q: tuple[int, ...]            # per member, Q.16 fixed point
    members: tuple[MemberLogits, ...]
    softmax: I.SoftmaxConsts | None     # "average": i-softmax of the logit codes

    def to_dict(self) -> dict:
        """The manifest's record (what the device needs)."""
        return {"method": self.method, "alpha_frac": ALPHA_FRAC, "alpha_q": list(self.alpha_q),
                "logit_frac": LOGIT_FRAC,
                "members": [{"logit_mult": list(m.mult), "logit_shift": m.shift} for m in self.members]}

    @classmethod
    def from_dict(cls, d: dict) -> "EnsembleVote":
        if d.get("alpha_frac") != ALPHA_FRAC or d.get("logit_frac") != LOGIT_FRAC:
            raise ValueError(f"vote record with alpha_frac {d.get('alpha_frac')} / logit_frac {d.get('logit_frac')}, "
                             f"this bebert reads {ALPHA_FRAC} / {LOGIT_FRAC}")
        members = tuple(MemberLogits(tuple(int(v) for v in m["logit_mult"]), int(m["logit_shift"]))
                        for m in d["members"])
        return _make(str(d["method"]), tuple(int(a) for a in d["alpha_q"]), members)


def fixed_alphas(alphas) -> tuple[int, ...]:
    out = []
    for a in alphas:
        a = float(a)
        if not (a >= 0 and a * (1 << ALPHA_FRAC) < ALPHA_LIMIT):
            raise ValueError(f"member alpha {a} outside [0, {ALPHA_LIMIT >> ALPHA_FRAC}) for the fixed-point vote")
        out.append(max(1, int(np.floor(a * (1 << ALPHA_FRAC) + 0.5))) if a > 0 else 0)
    if sum(out) <= 0:
        raise ValueError("the fixed-point alphas are all 0")
    return tuple(out)


def member_logits_consts(cls_scale: np.ndarray, acc_bound: int) -> MemberLogits:
    """(mult, shift) taking accumulators |acc| <= acc_bound on `cls_scale` to Q15.16 codes."""
    mult, _, shift = fixed_point(np.asarray(cls_scale, np.float64) * (1 << LOGIT_FRAC),
                                 np.zeros(len(cls_scale)), acc_bound=max(int(acc_bound), 1), max_shift=62)
    return MemberLogits(tuple(int(m) for m in mult), int(shift))


def _make(method: str, alpha_q: tuple[int, ...], members: tuple[MemberLogits, ...]) -> EnsembleVote:
    if method not in CLASS_VOTES + SCORE_VOTES:
        raise ValueError(f"vote must be one of {', '.join(CLASS_VOTES + SCORE_VOTES)}, got '{method}'")
    if len(alpha_q) != len(members) or not members:
        raise ValueError(f"{len(alpha_q)} alphas for {len(members)} members")
    sm = VOTE_SOFTMAX if method == "average" else None      # i-softmax of the codes (2^-16 in, 16-bit out)
    return EnsembleVote(method, alpha_q, members, sm)


def prepare_vote(method: str, alphas, cls_scales, acc_bounds) -> EnsembleVote:
    """The integer vote of an ensemble: fixed-point alphas and every member's logit constants."""
    members = tuple(member_logits_consts(s, b) for s, b in zip(cls_scales, acc_bounds))
    return _make(method, fixed_alphas(alphas), members)


def logit_codes(acc: np.ndarray, m: MemberLogits) -> np.ndarray:
    """One member's Q15.16 logit codes (n, labels) int64 from its accumulators (n, labels)."""
    return requantize(np.asarray(acc, np.int64), np.asarray(m.mult, np.int64), 0, m.shift, 0, True).astype(np.int64)


def _argmax(x: np.ndarray) -> np.ndarray:
    return np.argmax(x, axis=-1)  # first maximum: ties to the lowest index


def apply_vote(vote: EnsembleVote, accs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """(per-member predictions, ensemble prediction) from per-member accumulators (n, labels).

    Classes: int64 class indices. STS-B: int64 Q15.16 scores."""
    if len(accs) != len(vote.members):
        raise ValueError(f"{len(accs)} members' accumulators for a vote of {len(vote.members)}")
    codes = [logit_codes(a, m) for a, m in zip(accs, vote.members)]
    A = [np.int64(a) for a in vote.alpha_q]
    if vote.method in SCORE_VOTES:
        s = np.stack([c[:, 0] for c in codes])                   # (members, n)
        total = np.int64(sum(vote.alpha_q))
        if vote.method == "mean":
            acc = sum(a * row for a, row in zip(A, s))
            out = (2 * acc + total) // (2 * total)
        else:
            order = np.argsort(s, axis=0, kind="stable")
            cum = np.cumsum(np.asarray(A, np.int64)[order], axis=0)
            first = np.argmax(2 * cum >= total, axis=0)
            out = np.take_along_axis(s, np.take_along_axis(order, first[None], 0), 0)[0]
        return [row.copy() for row in s], out.astype(np.int64)
    preds = [_argmax(c) for c in codes]
    k = codes[0].shape[1]
    if vote.method == "samme":
        totals = sum(a * (p[:, None] == np.arange(k)[None]) for a, p in zip(A, preds))
    elif vote.method == "samme.r":
        totals = sum(codes)
    else:
        totals = sum(a * np.asarray(I.apply_softmax(c, vote.softmax), np.int64) for a, c in zip(A, codes))
    return preds, _argmax(np.asarray(totals, np.int64)).astype(np.int64)


def score_value(codes: np.ndarray) -> np.ndarray:
    """Q15.16 score codes as floats (reporting only)."""
    return np.asarray(codes, np.float64) / (1 << LOGIT_FRAC)
