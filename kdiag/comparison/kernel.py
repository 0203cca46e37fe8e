"""The vectorised kernel: compares many records of one output, a chunk of rows at a time.

A chunk holds `rows x k` elements (k = elements per record) and its temporaries live in buffers of
`chunk_elements`, reused for every chunk, so memory stays bounded and the working set stays in the
CPU cache; the input arrays are read once. The common case (all values finite, all within
tolerance) takes a short path: a subtraction, a handful of reductions and one per-record maximum.
NaN/Inf handling, failure masks and required tolerances are computed only in the chunks that need
them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kdiag.comparison.types import REL_EPS

# fetch(start, stop) -> (A rows, B rows, aligned positions of those rows); A/B shaped (rows, k).
Fetch = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class Candidate:
    """A record that may be among the worst: enough to report it without the arrays."""

    key: float
    pos: int  # aligned position
    failed: bool
    abs: float
    rel: float
    element: int  # flat index within the record
    a: object
    b: object


@dataclass
class Partial:
    """What one kernel run over some rows found; partials of one output are merged in order."""

    elems: int = 0
    abs_sum: float = 0.0
    abs_max: float = 0.0
    rel_sum: float = 0.0
    rel_max: float = 0.0
    req_atol: float = 0.0
    req_rtol: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    zero: int = 0
    nonfinite: int = 0
    value_fail: int = 0
    value_first: list[int] = field(default_factory=list)
    nan_fail: int = 0
    nan_first: list[int] = field(default_factory=list)
    inf_fail: int = 0
    inf_first: list[int] = field(default_factory=list)
    worst_fail: list[Candidate] = field(default_factory=list)
    worst_all: list[Candidate] = field(default_factory=list)
    compared: int = 0

    def merge(self, o: Partial, top_k: int, first_n: int) -> None:
        self.elems += o.elems
        self.abs_sum += o.abs_sum
        self.rel_sum += o.rel_sum
        self.abs_max = max(self.abs_max, o.abs_max)
        self.rel_max = max(self.rel_max, o.rel_max)
        self.req_atol = max(self.req_atol, o.req_atol)
        self.req_rtol = max(self.req_rtol, o.req_rtol)
        self.hist += o.hist
        self.zero += o.zero
        self.nonfinite += o.nonfinite
        self.compared += o.compared
        for attr in ("value", "nan", "inf"):
            setattr(self, f"{attr}_fail", getattr(self, f"{attr}_fail") + getattr(o, f"{attr}_fail"))
            first = getattr(self, f"{attr}_first")
            first.extend(getattr(o, f"{attr}_first")[: max(0, first_n - len(first))])
        self.worst_fail = _top(self.worst_fail + o.worst_fail, top_k)
        self.worst_all = _top(self.worst_all + o.worst_all, top_k)


def _top(cands: list[Candidate], k: int) -> list[Candidate]:
    return sorted(cands, key=lambda c: (-c.key, c.pos))[:k]


def compute_dtype(da: np.dtype, db: np.dtype) -> np.dtype | None:
    """The dtype both sides are cast to before subtracting; None: compare for equality only.

    float16/bfloat16 and small ints go to float32, wide ints to float64 (exact up to 2^53), bools
    to float32 (a flip is an error of 1), complex to complex128.
    """
    kinds = {da.kind, db.kind}
    if kinds & {"U", "S", "O", "V", "M", "m"}:
        return None
    if "c" in kinds:
        return np.dtype(np.complex128)
    wide = False
    for d in (da, db):
        if (d.kind == "f" and d.itemsize > 4) or (d.kind in "iu" and d.itemsize > 2):
            wide = True
    return np.dtype(np.float64 if wide else np.float32)


def _rowreduce(x2: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Reduce each row of a (rows, k) array with `ufunc`, fast for small k.

    numpy's reduction along a short last axis is an order of magnitude slower than k strided
    element-wise passes, so small k is reduced column by column into one output.
    """
    r, k = x2.shape
    if k == 1:
        return x2[:, 0]
    if k > 32:
        return ufunc.reduce(x2, axis=1)
    out = ufunc(x2[:, 0], x2[:, 1])
    for j in range(2, k):
        ufunc(out, x2[:, j], out=out)
    return out


def _rowstat(x2: np.ndarray, stat: str, q: float) -> np.ndarray:
    if stat == "max":
        return _rowreduce(x2, np.maximum)
    if stat == "mean":
        s = _rowreduce(x2, np.add)
        return s / x2.shape[1] if x2.shape[1] > 1 else s.copy()
    if stat == "median":
        return np.median(x2, axis=1)
    return np.quantile(x2, q, axis=1)


def run(fetch: Fetch, rows: int, k: int, *, cdtype: np.dtype | None, atol: float, rtol: float,
        stat: str, q: float, chunk_elements: int, top_k: int, first_n: int) -> Partial:
    """Compare `rows` records (k elements each) delivered by `fetch`, chunk by chunk."""
    with np.errstate(all="ignore"):
        return _run(fetch, rows, k, cdtype=cdtype, atol=atol, rtol=rtol, stat=stat, q=q,
                    chunk_elements=chunk_elements, top_k=top_k, first_n=first_n)


def _run(fetch: Fetch, rows: int, k: int, *, cdtype: np.dtype | None, atol: float, rtol: float,
         stat: str, q: float, chunk_elements: int, top_k: int, first_n: int) -> Partial:
    p = Partial()
    if rows == 0:
        return p
    chunk_rows = max(1, chunk_elements // max(k, 1))
    if cdtype is None:
        for s in range(0, rows, chunk_rows):
            a2, b2, pos = fetch(s, min(rows, s + chunk_rows))
            _equality_chunk(p, a2, b2, pos, top_k, first_n)
        return p
    n_buf = chunk_rows * k
    real = np.dtype(np.float64) if cdtype.kind == "c" else cdtype
    buf_d = np.empty(n_buf, dtype=real)
    buf_r = np.empty(n_buf, dtype=real)
    buf_m = np.empty(n_buf, dtype=bool)
    buf_m2 = np.empty(n_buf, dtype=bool)
    for s in range(0, rows, chunk_rows):
        a2, b2, pos = fetch(s, min(rows, s + chunk_rows))
        if a2.dtype != cdtype:
            a2 = a2.astype(cdtype)
        if b2.dtype != cdtype:
            b2 = b2.astype(cdtype)
        _numeric_chunk(p, a2, b2, pos, buf_d, buf_r, buf_m, buf_m2, atol, rtol, stat, q,
                       top_k, first_n)
    return p


def _numeric_chunk(p: Partial, a2: np.ndarray, b2: np.ndarray, pos: np.ndarray,
                   buf_d: np.ndarray, buf_r: np.ndarray, buf_m: np.ndarray, buf_m2: np.ndarray,
                   atol: float, rtol: float, stat: str, q: float, top_k: int,
                   first_n: int) -> None:
    r, k = a2.shape
    n = r * k
    fa = a2.reshape(-1)
    fb = b2.reshape(-1)
    if fa.dtype.kind == "c":
        d = np.abs(fa - fb)
        absa = np.abs(fa)
    else:
        d = np.subtract(fa, fb, out=buf_d[:n])
        np.abs(d, out=d)
        absa = None
    dmax = d.max()
    if dmax == 0:
        # Exactly equal chunk (same model, same inputs): every statistic is zero.
        p.elems += n
        p.compared += r
        p.zero += r
        p.hist[0] += r  # zeros sit in exponent bin 0, as in the general path
        if len(p.worst_all) < top_k:
            d2 = d.reshape(r, k)
            ctx = (a2, b2, d2, d2, None, None, None, k)
            p.worst_all = _update_top(p.worst_all, np.zeros(r), pos, ctx, top_k)
        return
    rec_nan = rec_inf = bad = None
    nonfin = None
    if not np.isfinite(dmax):
        # Slow path: classify NaN/Inf, then zero the non-finite elements out of the statistics.
        nan_a, nan_b = np.isnan(fa), np.isnan(fb)
        inf_a, inf_b = np.isinf(fa), np.isinf(fb)
        nanmis = nan_a ^ nan_b
        nonfin = nan_a | nan_b | inf_a | inf_b
        agree = (nan_a & nan_b) | (inf_a & inf_b & (fa == fb))
        infmis = nonfin & ~agree & ~nanmis
        if not np.isfinite(d[~nonfin]).all():  # float32 overflow of a finite difference
            d = np.abs(fa.astype(np.float64) - fb.astype(np.float64))
        d[nonfin] = 0
        rec_nan = _rowreduce(nanmis.reshape(r, k), np.logical_or)
        rec_inf = _rowreduce(infmis.reshape(r, k), np.logical_or) & ~rec_nan
        bad = rec_nan | rec_inf
        if not bad.any():
            rec_nan = rec_inf = bad = None
        p.elems += n - int(np.count_nonzero(nonfin))
        dmax = d.max()
    else:
        p.elems += n
    if absa is None:
        absa = np.abs(fa, out=buf_r[:n]) if d.dtype == buf_r.dtype else np.abs(fa).astype(d.dtype)
    elif absa.dtype != d.dtype:
        absa = absa.astype(d.dtype)
    if nonfin is not None:
        absa[nonfin] = 1
    np.maximum(absa, REL_EPS, out=absa)
    rel = np.divide(d, absa, out=absa)
    relmax = rel.max()
    p.abs_sum += float(d.sum())
    p.rel_sum += float(rel.sum())
    p.abs_max = max(p.abs_max, float(dmax))
    p.rel_max = max(p.rel_max, float(relmax))
    p.compared += r

    d2 = d.reshape(r, k)
    rel2 = rel.reshape(r, k)
    rec_fail = None
    if stat == "elemwise":
        s_abs = _rowreduce(d2, np.maximum)
        s_rel = None
        if dmax > atol and relmax > rtol:
            m = np.greater(d, atol, out=buf_m[:n] if d.size <= buf_m.size else None)
            m &= np.greater(rel, rtol, out=buf_m2[:n] if d.size <= buf_m2.size else None)
            rec_fail = _rowreduce(m.reshape(r, k), np.logical_or)
        if relmax > rtol and dmax > p.req_atol:
            p.req_atol = max(p.req_atol, float(np.max(d, where=rel > rtol, initial=0)))
        if dmax > atol and relmax > p.req_rtol:
            p.req_rtol = max(p.req_rtol, float(np.max(rel, where=d > atol, initial=0)))
    else:
        s_abs = _rowstat(d2, stat, q)
        s_rel = _rowstat(rel2, stat, q)
        rec_fail = (s_abs > atol) & (s_rel > rtol)
        if not rec_fail.any():
            rec_fail = None
        sel = s_rel > rtol
        if sel.any():
            p.req_atol = max(p.req_atol, float(s_abs[sel].max()))
        sel = s_abs > atol
        if sel.any():
            p.req_rtol = max(p.req_rtol, float(s_rel[sel].max()))

    # Tallies of failing records, in position order.
    if bad is not None:
        p.nan_fail += _tally(rec_nan, pos, p.nan_first, first_n)
        p.inf_fail += _tally(rec_inf, pos, p.inf_first, first_n)
        if rec_fail is not None:
            rec_fail = rec_fail & ~bad
    if rec_fail is not None:
        p.value_fail += _tally(rec_fail, pos, p.value_first, first_n)

    # Histogram of the per-record statistic: binary exponents read from the float32 bits.
    h = s_abs if bad is None else s_abs[~bad]
    hf = np.ascontiguousarray(h, dtype=np.float32)
    p.zero += int(np.count_nonzero(hf == 0))
    p.hist += np.bincount(hf.view(np.int32) >> 23, minlength=256)[:256]
    if bad is not None:
        p.nonfinite += int(np.count_nonzero(bad))

    # Worst records: only rows that can enter the current top lists are looked at.
    key = s_abs if bad is None else np.where(bad, np.inf, s_abs)
    failing = None
    if rec_fail is not None or bad is not None:
        failing = rec_fail if bad is None else (bad if rec_fail is None else rec_fail | bad)
    ctx = (a2, b2, d2, rel2, s_rel, failing, nonfin, k)
    p.worst_all = _update_top(p.worst_all, key, pos, ctx, top_k)
    if failing is not None:
        p.worst_fail = _update_top(p.worst_fail, np.where(failing, key, -1.0), pos, ctx, top_k)


def _tally(mask: np.ndarray, pos: np.ndarray, first: list[int], first_n: int) -> int:
    c = int(np.count_nonzero(mask))
    if c and len(first) < first_n:
        first.extend(int(x) for x in pos[np.flatnonzero(mask)[: first_n - len(first)]])
    return c


def _update_top(top: list[Candidate], key: np.ndarray, pos: np.ndarray, ctx: tuple,
                top_k: int) -> list[Candidate]:
    if top_k <= 0:
        return top
    thr = top[-1].key if len(top) >= top_k else -np.inf
    kmax = key.max()
    if not kmax > thr or kmax < 0:
        return top
    r = key.shape[0]
    idx = np.argpartition(-key, top_k - 1)[:top_k] if r > top_k else np.arange(r)
    new = [_candidate(int(i), float(key[i]), pos, ctx) for i in idx
           if key[i] > thr and key[i] >= 0]
    return _top(top + new, top_k)


def _candidate(i: int, key: float, pos: np.ndarray, ctx: tuple) -> Candidate:
    a2, b2, d2, rel2, s_rel, failing, nonfin, k = ctx
    ra, rb = a2[i], b2[i]
    if key == np.inf and nonfin is not None:
        # The first element where NaN/Inf disagree.
        nf = nonfin.reshape(-1, k)[i]
        dis = nf & ~((np.isnan(ra) & np.isnan(rb)) | (ra == rb))
        j = int(np.argmax(dis))
    else:
        j = int(np.argmax(d2[i]))
    if key == np.inf:
        with np.errstate(all="ignore"):
            ab = float(abs(complex(ra[j]) - complex(rb[j])))
            rel = ab / max(abs(complex(ra[j])), REL_EPS) if ab == ab else ab
    else:
        ab = key
        rel = float(rel2[i].max()) if s_rel is None else float(s_rel[i])
    return Candidate(key=key, pos=int(pos[i]), failed=bool(failing is not None and failing[i]),
                     abs=ab, rel=rel, element=j, a=ra[j].item(), b=rb[j].item())


def _equality_chunk(p: Partial, a2: np.ndarray, b2: np.ndarray, pos: np.ndarray, top_k: int,
                    first_n: int) -> None:
    """Strings, bytes, objects: equal or not, no error statistics."""
    r, k = a2.shape
    neq = np.asarray(a2 != b2, dtype=bool).reshape(r, k)
    rec_fail = neq.any(axis=1)
    p.compared += r
    p.value_fail += _tally(rec_fail, pos, p.value_first, first_n)
    if top_k > 0 and len(p.worst_fail) < top_k:
        for i in np.flatnonzero(rec_fail)[: top_k - len(p.worst_fail)]:
            j = int(np.argmax(neq[i]))
            p.worst_fail.append(Candidate(key=1.0, pos=int(pos[i]), failed=True, abs=float("nan"),
                                          rel=float("nan"), element=j, a=_plain(a2[i, j]),
                                          b=_plain(b2[i, j])))


def _plain(x: object) -> object:
    return x.item() if isinstance(x, np.generic) else x


def histogram_bins(hist: np.ndarray, zero: int) -> list[tuple[float, float, int]]:
    """Power-of-two bins [2^e, 2^(e+1)) from float32 exponent counts, trimmed to the used range."""
    h = hist.astype(np.int64).copy()
    h[0] -= zero  # exponent field 0 holds zeros and subnormals
    used = np.flatnonzero(h)
    if used.size == 0:
        return []
    lo, hi = int(used[0]), int(used[-1])
    out = []
    for e in range(lo, hi + 1):
        low = 0.0 if e == 0 else float(2.0 ** (e - 127))
        high = float("inf") if e == 255 else float(2.0 ** (e - 126))
        out.append((low, high, int(h[e])))
    return out
