"""Gradient approximation for black-box audio effects (taught in ``notebooks/08_differentiable_dsp.ipynb``).

A black-box effect ``fn(x, params) -> y`` (numpy/scipy, a plugin host, anything without autograd) is
wrapped so that it can sit inside a torch graph: the forward pass calls ``fn``; the backward pass
*estimates* the vector-Jacobian product ``g^T dy/dparams`` for the incoming gradient ``g = dL/dy`` from
extra calls of ``fn`` at perturbed parameters (Steinmetz et al., ISMIR 2022 tutorial, "numerical
gradient approximation"; Martínez Ramírez et al., ICASSP 2021, used SPSA for DeepAFx):

- central finite differences, 2 P calls for P parameters, error O(step^2):
      G_j = < g, fn(x, p + c_j e_j) - fn(x, p - c_j e_j) > / (2 c_j)
- SPSA (Spall 1992, "Multivariate stochastic approximation using a simultaneous perturbation
  gradient approximation", IEEE Trans. Automatic Control 37(3)), 2 calls per sample whatever P:
      D ~ {-1, +1}^P (symmetric Bernoulli),  s = < g, fn(x, p + c*D) - fn(x, p - c*D) > / 2,
      G_j = s / (c_j D_j)
  averaged over ``n_samples`` draws. Each draw is unbiased to first order (E[D_i / D_j] = 0 for
  i != j) but noisy: the error of component j has variance sum_{i != j} (G_i c_i / c_j)^2 per draw.
  With P = 1 it is the central difference.

Conventions:
- ``x``: ``(B, C, T)`` tensor, passed to ``fn`` as a float64 numpy array; ``params``: ``(B, P)`` tensor,
  passed as float64 ``(B, P)``; ``fn`` returns an array whose first dimension is B (e.g. ``(B, C', T')``),
  returned as a tensor in ``x``'s dtype and device. Batch items must be independent (item b of the
  output depends only on item b of x and params): all items are perturbed in the same calls.
- Steps: ``c_j = eps * scale_j``. ``params`` are in whatever units ``fn`` takes; with normalised
  controls (e.g. [0, 1]) the default ``scale = 1`` is right; with real units pass ``scale`` (e.g. the
  range width of each parameter, so a 1e-3 step is 0.1 % of every range). ``fn`` must accept
  ``params +- c``: keep parameters at least one step inside their valid range.
- The audio input gets no gradient: a perturbation estimate over the C*T samples would take that
  many calls (finite differences) or be hopelessly noisy (SPSA), so ``x`` must not require grad
  (detach it; upstream processing then receives no gradient through this effect).
- Results are float64-accurate only if ``fn`` computes in float64: float32 rounding (~1e-7) divided
  by a 1e-3 step leaves ~1e-4 relative noise.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ._checks import check_audio

Effect = Callable[[np.ndarray, np.ndarray], np.ndarray]
METHODS = ("fd", "spsa")


class _BlackBox(torch.autograd.Function):
    @staticmethod
    def forward(ctx, params, x, effect):
        ctx.effect, ctx.dtype, ctx.device = effect, params.dtype, params.device
        ctx.x = x.detach().cpu().double().numpy()
        ctx.p = params.detach().cpu().double().numpy()
        y = effect._call(ctx.x, ctx.p, "the forward pass")
        ctx.shape = y.shape
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        g = grad_y.detach().cpu().double().numpy()
        grad = ctx.effect._vjp(ctx.x, ctx.p, ctx.shape, g)
        return torch.from_numpy(grad).to(device=ctx.device, dtype=ctx.dtype), None, None


class BlackBoxEffect:
    """A black-box effect with approximate parameter gradients; call it as ``effect(x, params) -> y``.

    Build it with ``finite_difference`` or ``spsa``. ``x``: ``(B, C, T)`` (must not require grad);
    ``params``: ``(B, P)``; ``y``: a tensor shaped like ``fn``'s output. SPSA draws its perturbations
    from a numpy generator seeded with ``seed``: the same seed and the same sequence of backward passes
    give the same gradients; each backward pass draws new perturbations.
    """

    def __init__(self, fn: Effect, method: str, eps: float = 1e-3, n_samples: int = 1,
                 seed: Optional[int] = None, scale: Optional[Sequence[float]] = None, name: Optional[str] = None):
        if not callable(fn):
            raise TypeError(f"fn must be a function fn(x, params) -> y; got {type(fn).__name__}.")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a small positive number (e.g. 1e-3); got {eps!r}.")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float64)
            if scale.ndim != 1 or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
                raise ValueError(f"scale must be a 1-D sequence of positive numbers, one per parameter; got {scale!r}.")
        self.fn, self.method, self.eps, self.n_samples, self.scale = fn, method, float(eps), n_samples, scale
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        extra = f", n_samples={self.n_samples}" if self.method == "spsa" else ""
        return f"BlackBoxEffect({self.name!r}, method={self.method!r}, eps={self.eps:g}{extra})"

    def __call__(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        check_audio(x)
        if x.requires_grad:
            raise ValueError(
                f"effect {self.name!r}: x requires grad, but only the parameters get (approximate) gradients; "
                "pass x.detach() (upstream processing then gets no gradient through this effect)."
            )
        if not isinstance(params, torch.Tensor) or not params.is_floating_point():
            raise TypeError(f"effect {self.name!r}: params must be a floating torch.Tensor shaped (batch, n_params).")
        if params.ndim != 2 or params.shape[0] != x.shape[0]:
            raise ValueError(
                f"effect {self.name!r}: params must have shape (batch, n_params) with batch = {x.shape[0]} "
                f"(the batch of x); got {tuple(params.shape)}."
            )
        if self.scale is not None and self.scale.shape[0] != params.shape[1]:
            raise ValueError(
                f"effect {self.name!r}: scale has {self.scale.shape[0]} entries but params has {params.shape[1]} columns."
            )
        if not bool(torch.isfinite(params).all()):
            raise ValueError(f"effect {self.name!r}: params contain NaN or infinite values.")
        return _BlackBox.apply(params, x, self)

    def _call(self, x: np.ndarray, p: np.ndarray, when: str, shape: Optional[tuple] = None) -> np.ndarray:
        y = np.asarray(self.fn(x.copy(), p.copy()), dtype=np.float64)
        if shape is None and (y.ndim == 0 or y.shape[0] != x.shape[0]):
            raise ValueError(
                f"effect {self.name!r} returned shape {y.shape} in {when}; its first dimension must be the batch "
                f"size {x.shape[0]}."
            )
        if shape is not None and y.shape != shape:
            raise ValueError(f"effect {self.name!r} returned shape {y.shape} in {when}, but {shape} in the forward pass.")
        bad = ~np.isfinite(y.reshape(y.shape[0], -1)).all(axis=1)
        if bad.any():
            b = int(bad.argmax())
            raise ValueError(
                f"effect {self.name!r} returned NaN or infinite values in {when} for batch item {b} "
                f"(params {p[b].tolist()}). Check that the parameters, and the parameters plus or minus the "
                "step eps * scale, are valid."
            )
        return y

    def _vjp(self, x: np.ndarray, p: np.ndarray, shape: tuple, g: np.ndarray) -> np.ndarray:
        batch, n_params = p.shape
        step = self.eps * (np.ones(n_params) if self.scale is None else self.scale)
        when = f"the gradient estimate ({self.method}, step {self.eps:g} * scale)"

        def dot(delta):  # < g, fn(p + delta) - fn(p - delta) > per batch item
            diff = self._call(x, p + delta, when, shape) - self._call(x, p - delta, when, shape)
            return (g * diff).reshape(batch, -1).sum(axis=1)

        grad = np.zeros((batch, n_params))
        if self.method == "fd":
            for j in range(n_params):
                delta = np.zeros((batch, n_params))
                delta[:, j] = step[j]
                grad[:, j] = dot(delta) / (2 * step[j])
        else:
            for _ in range(self.n_samples):
                sign = self.rng.choice((-1.0, 1.0), size=(batch, n_params))
                grad += (dot(sign * step) / 2)[:, None] / (sign * step)
            grad /= self.n_samples
        return grad


def finite_difference(fn: Effect, eps: float = 1e-3, scale: Optional[Sequence[float]] = None,
                      name: Optional[str] = None) -> BlackBoxEffect:
    """Wrap ``fn(x, params)`` with central-difference parameter gradients (2 P calls per backward pass).

    Steps ``eps * scale`` per parameter (``scale`` defaults to 1: right for normalised controls).
    ``name`` (default ``fn.__name__``) labels error messages. See the module docstring for conventions.
    """
    return BlackBoxEffect(fn, "fd", eps=eps, scale=scale, name=name)


def spsa(fn: Effect, eps: float = 1e-3, n_samples: int = 1, seed: Optional[int] = None,
         scale: Optional[Sequence[float]] = None, name: Optional[str] = None) -> BlackBoxEffect:
    """Wrap ``fn(x, params)`` with SPSA parameter gradients (Spall 1992): 2 calls per sample, any P.

    ``n_samples`` random +-1 perturbations are averaged per backward pass; ``seed`` makes them
    reproducible. Steps ``eps * scale`` as in ``finite_difference``.
    """
    return BlackBoxEffect(fn, "spsa", eps=eps, n_samples=n_samples, seed=seed, scale=scale, name=name)
