"""Learned rounding (AdaRound, Nagel et al. 2020) for a layer's weights, from its input Hessian alone.

Each weight rounds down or up: ``q = floor(w / s) + h(V)`` with ``h`` a rectified sigmoid of a free
variable per weight, learned to minimise the layer's output error on the calibration inputs plus a
regulariser that pushes every ``h`` to 0 or 1 (its exponent annealed from 20 to 2). The output error
``‖(Wq − W) X‖²`` is ``tr(ΔW · XᵀX · ΔWᵀ)``, so the ``XᵀX`` GPTQ already collects
(:func:`quantsweep.schemes.gptq.conv_hessians`) is all the optimisation needs: no activations are
stored and each step is one ``[out, cols] x [cols, cols]`` product.

Example:
    >>> q = adaround_quantize(w2, xtx, scale, qmax=7)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

__all__ = ["adaround_quantize"]

_ZETA, _GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)


def _h(v: np.ndarray) -> np.ndarray:
    return np.clip(1.0 / (1.0 + np.exp(-v)) * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)


def adaround_quantize(w: np.ndarray, xtx: np.ndarray, scale: np.ndarray, qmax: int, iters: int = 300,
                      lr: float = 0.05, reg: float = 0.01, warmup: float = 0.2, damp: float = 0.01) -> np.ndarray:
    """Learned up/down rounding of ``w`` [out, cols] with ``scale`` per row or per element: integer
    values in [-qmax, qmax] (int8 array).

    Args:
        w: the layer's float weights, flattened to [out, cols].
        xtx: ``XᵀX`` of its inputs [cols, cols] (columns never seen non-zero get their weights zeroed).
        scale: [out] or [out, cols] (group-wise scales, expanded).
        qmax: the largest integer (7 at 4 bits).
        iters: Adam steps; the first ``warmup`` share without the rounding regulariser.
        lr: Adam's step size on the free variables.
        reg: weight of the rounding regulariser against the relative output error.
        damp: added to ``XᵀX``'s diagonal, as a share of its mean (as GPTQ does).
    """
    from quantsweep.schemes.gptq import damped_hessian

    w, h = damped_hessian(w, xtx, damp)
    s = np.broadcast_to(scale.astype(np.float64).reshape(len(w), -1), w.shape)
    floor = np.floor(w / s)
    rest = np.clip(w / s - floor, 0.01, 0.99)
    v = -np.log((_ZETA - _GAMMA) / (rest - _GAMMA) - 1.0)  # h(v) = rest: starts at the float weights
    lo, hi = -qmax - floor, qmax - floor  # h's range that keeps q within [-qmax, qmax]
    norm = max(float(np.einsum("ij,jk,ik->", w, h, w)), 1e-12)
    m, u = np.zeros_like(v), np.zeros_like(v)
    start = int(warmup * iters)
    for t in range(1, iters + 1):
        sig = 1.0 / (1.0 + np.exp(-v))
        hv = np.clip(sig * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)
        q = np.clip(hv, lo, hi)
        delta = s * (floor + q) - w
        grad = 2.0 * (delta @ h) * s / norm  # d(relative output error)/dq
        if t > start:
            beta = 20.0 + (2.0 - 20.0) * (t - start) / max(iters - start, 1)
            x = 2.0 * hv - 1.0
            grad = grad - reg * beta * np.abs(x) ** (beta - 1.0) * np.sign(x) * 2.0 / w.size
        inside = (hv > 0.0) & (hv < 1.0) & (hv > lo) & (hv < hi)
        grad_v = grad * inside * (_ZETA - _GAMMA) * sig * (1.0 - sig)
        m = 0.9 * m + 0.1 * grad_v
        u = 0.999 * u + 0.001 * grad_v ** 2
        v -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(u / (1 - 0.999 ** t)) + 1e-12)
    q = np.clip(floor + (_h(v) >= 0.5), -qmax, qmax)
    return q.astype(np.int8)
