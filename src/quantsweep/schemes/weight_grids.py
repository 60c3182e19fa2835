"""Weight quantization grids for the graph schemes: per-channel and group-wise scales (symmetric,
asymmetric with zero points, and group multipliers of one per-channel step), each with an optional
MSE clip search. Pure numpy: the scheme (:mod:`quantsweep.schemes.graph_weight_only`) and GPTQ
(:mod:`quantsweep.schemes.gptq`) call them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HESSIAN_PATCHES", "as_scale", "block_for", "factor_blocks", "quantize_groups", "quantize_groups_asym",
           "quantize_progressive", "quantize_weight"]

_CLIP_GRID = np.linspace(0.5, 1.0, 21)
# GPTQ's Hessians use every patch of each calibration image (up to this many per conv and image, a
# memory guard): the exact XᵀX. Sampling 2048 made the result depend on the sample (demo W4A8 -1.07 at
# 2048, -1.13 at 4096, -0.49 with every patch; real YOLOv5n W4A16 -3.06 / -3.32 / -2.74)
HESSIAN_PATCHES = 65536


_FP16_TINY = 2.0 ** -14  # smallest normal fp16: a smaller scale is raised to it (its weights round to 0 anyway)


def as_scale(scale: np.ndarray, fp16: bool) -> np.ndarray:
    """``scale`` as stored: unchanged, or rounded to the nearest fp16 value (kept in float64)."""
    return np.maximum(scale, _FP16_TINY).astype(np.float16).astype(np.float64) if fp16 else scale


def quantize_weight(w: np.ndarray, bits: int, axis: int, mse: bool,
                    fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel quantization of ``w`` along ``axis`` -> (int8 values, float scales);
    ``fp16_scales``: every scale is an fp16 value (rounded before the weights are quantized)."""
    qmax = 2 ** (bits - 1) - 1
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)
    amax = np.abs(moved).max(axis=1)
    amax[amax == 0] = 1.0
    best = as_scale(amax / qmax, fp16_scales)
    if mse:  # per-channel search of the clipping ratio that minimises reconstruction error
        best_err = np.full(len(amax), np.inf)
        for r in _CLIP_GRID:
            scale = as_scale(amax * r / qmax, fp16_scales)
            q = np.clip(np.round(moved / scale[:, None]), -qmax, qmax)
            err = ((q * scale[:, None] - moved) ** 2).sum(axis=1)
            better = err < best_err
            best[better], best_err[better] = scale[better], err[better]
    q = np.clip(np.round(moved / best[:, None]), -qmax, qmax).astype(np.int8)
    shape = (w.shape[axis],) + tuple(np.delete(w.shape, axis))
    q = np.moveaxis(q.reshape(shape), 0, axis)
    return q, best.astype(np.float32)


def block_for(cols: int, group: int) -> int:
    """The block a conv of ``cols`` flattened input columns gets for ``group`` (0: per channel): ``group``
    when it divides ``cols``; else the largest divisor of ``cols`` in [group/2, group], or the smallest in
    [group, 2 x group]; else 0 (one scale per output channel). ONNX allows a ragged last block, but
    OpenVINO's importer refuses a block size that does not divide the axis."""
    if group <= 0 or cols % group == 0:
        return group
    below = [d for d in range((group + 1) // 2, group + 1) if cols % d == 0]
    above = [d for d in range(group, 2 * group + 1) if cols % d == 0]
    return max(below) if below else (min(above) if above else 0)


def quantize_groups(w2: np.ndarray, bits: int, group: int, mse: bool,
                    fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantization of ``w2`` [out, cols] with one scale per row and block of ``group``
    columns (0: per row) -> (int8 values [out, cols], float scales [out, blocks])."""
    if group <= 0:
        q, scale = quantize_weight(w2, bits, 0, mse, fp16_scales)
        return q, scale[:, None]
    parts = [quantize_weight(w2[:, c:c + group], bits, 0, mse, fp16_scales) for c in range(0, w2.shape[1], group)]
    return np.concatenate([p[0] for p in parts], axis=1), np.stack([p[1] for p in parts], axis=1)


def quantize_groups_asym(w2: np.ndarray, group: int, mse: bool,
                         fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric 4-bit quantization of ``w2`` [out, cols], one scale and one zero point per row and
    block of ``group`` columns (0: per row): stored values ``u`` in [0, 15] read as ``(u - z) * s``.
    Returns (``q = u - z`` int8 [out, cols], scales [out, blocks], zero points uint8 [out, blocks]);
    the range [min, max] of each group (widened to hold 0) is shrunk by the MSE search as for
    symmetric scales. Sixteen levels placed on the group's own range, where the symmetric grid spends
    fifteen on [-max|w|, max|w|]."""
    out, cols = w2.shape
    width = group if group > 0 else cols
    w3 = w2.reshape(out, cols // width, width).astype(np.float64)
    lo, hi = np.minimum(w3.min(axis=2), 0.0), np.maximum(w3.max(axis=2), 0.0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)

    def grid(r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = as_scale(span * r / 15, fp16_scales)
        zero = np.clip(np.round(-lo * r / scale), 0, 15)
        q = np.clip(np.round(w3 / scale[..., None]) + zero[..., None], 0, 15) - zero[..., None]
        return scale, zero, q

    best_s, best_z, best_q = grid(1.0)
    if mse:
        best_err = ((best_q * best_s[..., None] - w3) ** 2).sum(axis=2)
        for r in _CLIP_GRID:
            scale, zero, q = grid(float(r))
            err = ((q * scale[..., None] - w3) ** 2).sum(axis=2)
            better = err < best_err
            best_s[better], best_z[better], best_q[better], best_err[better] = scale[better], zero[better], q[better], err[better]
    return best_q.reshape(out, cols).astype(np.int8), best_s.astype(np.float32), best_z.astype(np.uint8)


def quantize_progressive(w2: np.ndarray, block: int, max_mult: int, mse: bool,
                         fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4-bit values with group-wise steps that an int8 kernel can still read (the progressive
    scheme of QServe, W4A8): one float scale ``s`` per row and one *integer* multiplier ``m`` in
    [1, ``max_mult``] per block of ``block`` columns, so each group's step is ``s * m`` and its int8
    weights ``q * m`` (|q| <= 7) share the row's scale ``s``. Returns (q int8 [out, cols] in [-7, 7],
    s [out], m [out, blocks]); ``s`` per row is searched to minimise the rows' squared error."""
    out, cols = w2.shape
    ideal = quantize_groups(w2, 4, block, mse)[1].astype(np.float64)  # the unconstrained group steps
    blocks = ideal.shape[1]
    w3 = w2.reshape(out, blocks, block).astype(np.float64)
    top = ideal.max(axis=1) / max_mult
    best_err = np.full(out, np.inf)
    best_s, best_m = top.copy(), np.ones((out, blocks))
    for r in np.linspace(0.5, 1.0, 11):  # the row scale: the largest group at max_mult, or a finer grid
        sc = as_scale(top * r, fp16_scales)
        m = np.clip(np.round(ideal / sc[:, None]), 1, max_mult)
        step = (sc[:, None] * m)[:, :, None]
        err = ((np.clip(np.round(w3 / step), -7, 7) * step - w3) ** 2).sum(axis=(1, 2))
        better = err < best_err
        best_err[better], best_s[better], best_m[better] = err[better], sc[better], m[better]
    step = (best_s[:, None] * best_m)[:, :, None]
    q = np.clip(np.round(w3 / step), -7, 7).reshape(out, cols).astype(np.int8)
    return q, best_s.astype(np.float32), best_m.astype(np.int8)


def factor_blocks(v: np.ndarray, block: int, max_mult: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``v`` [out, cols] int8 as ``q * m`` with |q| <= 7 and one multiplier per block in [1, max_mult]
    (the smallest that divides the block and covers its range), or None when a block has none."""
    out, cols = v.shape
    v3 = v.reshape(out, cols // block, block).astype(np.int32)
    amax = np.abs(v3).max(axis=2)
    m = np.zeros(amax.shape, np.int32)
    for k in range(max_mult, 0, -1):  # downwards: the smallest valid multiplier wins
        ok = (amax <= 7 * k) & (v3 % k == 0).all(axis=2)
        m[ok] = k
    if (m == 0).any():
        return None
    return (v3 // m[:, :, None]).astype(np.int8), m
