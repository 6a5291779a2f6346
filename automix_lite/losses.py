"""Loss functions and metrics for mixing (taught in ``notebooks/10_losses.ipynb``).

All take a prediction ``pred`` (y-hat) and a ``target`` (y) shaped ``(batch, channels, samples)``
and return a scalar tensor (reduction: mean).

- ``l1``: mean absolute error, the time-domain "phase" loss of Steinmetz (2020, eq. 4.17).
- ``esr``: error-to-signal ratio ``sum((y - y_hat)^2) / sum(y^2)`` per item and channel, then the mean
  (Steinmetz 2020, eq. 4.19, after Damskägg et al. 2019 and Wright & Välimäki 2019; the thesis's
  extra ``1/(n-1)`` factor is left out, as in auraloss, so ESR = 1 means an error as loud as the target).
- ``si_sdr`` / ``si_sdr_loss``: scale-invariant signal-to-distortion ratio in dB (Le Roux et al.
  2019), higher is better; the loss is its negative.
- ``MRSTFTLoss``: the multi-resolution STFT loss (Yamamoto et al. 2020; Steinmetz 2020, sec. 4.6.1,
  eqs. 4.22-4.24), numerically the same as ``auraloss.freq.MultiResolutionSTFTLoss`` 0.4 with the same
  defaults (its three resolutions are those of the thesis, Table 5).
- ``StereoLoss``: the sum-and-difference stereo loss (Steinmetz 2020, sec. 5.4, eq. 5.3; Steinmetz et
  al. 2021; the ISMIR 2022 tutorial): MR-STFT of L+R plus MR-STFT of L-R. Swapping left and
  right of the prediction leaves it unchanged, so a model is not pushed to pan uncertain sources to
  the centre.

The STFT losses run one ``torch.stft`` per resolution for all signals at once, with a hand-written
backward pass (inverse FFT, window, overlap-add); forward + backward is several times faster than
auraloss on a CPU (see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_audio

__all__ = ["l1", "esr", "si_sdr", "si_sdr_loss", "MRSTFTLoss", "StereoLoss"]


def _check_pair(pred: torch.Tensor, target: torch.Tensor, channels=None, full_precision: str = "") -> None:
    check_audio(pred, "pred", channels=channels, full_precision=full_precision)
    check_audio(target, "target", channels=channels, full_precision=full_precision)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape (batch, channels, samples); got pred "
            f"{tuple(pred.shape)} and target {tuple(target.shape)}. Trim or pad one of them to match."
        )


# ------------------------------------------------------------------------------------ time domain


def _reduce(per_item_channel: torch.Tensor, reduction: str) -> torch.Tensor:
    """``(B, C)`` values -> their mean (``"mean"``) or the mean over channels per item, ``(B,)`` (``"none"``)."""
    if reduction == "mean":
        return per_item_channel.mean()
    if reduction == "none":
        return per_item_channel.mean(-1)
    raise ValueError(f"reduction must be 'mean' or 'none' (one value per item); got {reduction!r}.")


def l1(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error ``mean |y_hat - y|`` over every sample: a scalar, or per item ``(B,)`` with
    ``reduction="none"``."""
    _check_pair(pred, target)
    return _reduce((pred - target).abs().mean(-1), reduction)


def esr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8, reduction: str = "mean") -> torch.Tensor:
    """Error-to-signal ratio ``sum_t (y - y_hat)^2 / (sum_t y^2 + eps)`` per item and channel, averaged
    (``reduction="none"``: averaged over channels only, one value per item ``(B,)``).

    Scale-free: 0 is perfect, 1 means the error has the target's energy (e.g. ``pred = 0``), and
    ``pred = a * target`` gives ``(1 - a)^2``.
    """
    _check_pair(pred, target)
    return _reduce((target - pred).square().sum(-1) / (target.square().sum(-1) + eps), reduction)


def si_sdr(pred: torch.Tensor, target: torch.Tensor, zero_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB (higher is better), per item and channel, averaged.

    With ``s = a * y``, ``a = <y_hat, y> / (||y||^2 + eps)`` (the scaled target closest to the
    prediction) and ``e = y_hat - s``: ``10 log10(||s||^2 / (||e||^2 + eps) + eps)``. ``zero_mean``
    removes each signal's mean first. Rescaling ``pred`` does not change it; ``pred`` = target plus
    orthogonal noise gives ``10 log10(P_target / P_noise)``. Same value as ``-auraloss.time.SISDRLoss()``.
    """
    _check_pair(pred, target)
    if zero_mean:
        pred = pred - pred.mean(-1, keepdim=True)
        target = target - target.mean(-1, keepdim=True)
    a = (pred * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + eps)
    s = a * target
    ratio = s.square().sum(-1) / ((pred - s).square().sum(-1) + eps)
    return (10 * torch.log10(ratio + eps)).mean()


def si_sdr_loss(pred: torch.Tensor, target: torch.Tensor, zero_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``-si_sdr(pred, target)``: a loss to minimise (dB)."""
    return -si_sdr(pred, target, zero_mean, eps)


# ------------------------------------------------------------------------------------ STFT magnitudes


@functools.lru_cache(maxsize=None)
def _hann(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Periodic Hann window (as ``torch.hann_window``), cached per length, dtype and device."""
    return torch.hann_window(length, dtype=dtype, device=device)


def _spectrum(xp: torch.Tensor, window: torch.Tensor, n_fft: int, hop: int, eps: float):
    """STFT of the padded rows ``xp`` (rows, samples) -> complex spectrum and its magnitude
    ``sqrt(max(|S|^2, eps))`` (as auraloss), both (rows, bins, frames)."""
    spec = torch.stft(xp, n_fft, hop, window.shape[0], window, center=False, return_complex=True)
    mag = torch.addcmul(spec.real.square(), spec.imag, spec.imag).clamp_min_(eps).sqrt_()
    return spec, mag


def _stft_adjoint(spec: torch.Tensor, scale: torch.Tensor, window: torch.Tensor, n_fft: int, hop: int, length: int):
    """Gradient with respect to the STFT input (rows, length) of a loss whose gradient with respect to
    the spectrum is ``spec * scale`` (``scale`` real, = d loss / d|S| / |S|, both (rows, bins, frames)).

    Per frame an inverse real FFT, times the window, then overlap-add by ``ceil(win / hop)`` shifted
    additions: several times faster than autograd through ``torch.stft``'s strided frames.
    """
    win = window.shape[0]
    # The adjoint of rfft is an unnormalised irfft that counts bins 1 .. n_fft/2-1 once, but irfft
    # counts them twice (each stands for two conjugate bins): double DC and Nyquist instead and halve
    # the result (in the window).
    scale[..., 0, :] *= 2
    if n_fft % 2 == 0:
        scale[..., -1, :] *= 2
    frames = torch.fft.irfft((spec * scale).transpose(-1, -2), n=n_fft, norm="forward")
    start = (n_fft - win) // 2  # torch.stft centres the window in the n_fft-long frame
    frames = frames[..., start : start + win] * (0.5 * window)
    k = -(-win // hop)  # overlap-add: split each frame into k hop-long blocks, add block j at frame + j
    if k * hop > win:
        frames = F.pad(frames, (0, k * hop - win))
    n = frames.shape[-2]
    blocks = frames.view(*frames.shape[:-1], k, hop)
    out = frames.new_zeros(*frames.shape[:-2], n + k - 1, hop)
    for j in range(k):
        out[..., j : j + n, :] += blocks[..., j, :]
    out = out.flatten(-2)[..., : length - start]
    return F.pad(out, (start, length - start - out.shape[-1]))


class _ResolutionLoss(torch.autograd.Function):
    """One resolution of the MR-STFT loss, ``w_sc * sc + w_log_mag * mag`` per group, with a fused
    backward pass (autograd through the same steps is about a third slower).

    ``xp``: padded prediction rows (batch * channels, samples); ``y``: target magnitudes
    (batch, channels, bins, frames); ``dims``: the dimensions of ``y`` that the norms and means reduce
    (all of them: one value; (0, 2, 3): one value per channel).
    """

    @staticmethod
    def forward(ctx, xp, y, window, n_fft, hop, eps, dims, w_sc, w_log_mag):
        spec, x = _spectrum(xp, window, n_fft, hop, eps)
        x = x.view(y.shape)
        d = x - y
        diff_norm = torch.linalg.vector_norm(d, dim=dims)
        y_norm = torch.linalg.vector_norm(y, dim=dims)
        count = y.numel() // y_norm.numel()
        log_mag = torch.div(x, y).log_().abs_().sum(dim=dims) / count  # |log x - log y|, one log per bin
        ctx.save_for_backward(spec, x, d, diff_norm, y_norm, window)
        ctx.config = (n_fft, hop, eps, dims, w_sc, w_log_mag, count, xp.shape[-1])
        return w_sc * diff_norm / y_norm + w_log_mag * log_mag

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        spec, x, d, diff_norm, y_norm, window = ctx.saved_tensors
        n_fft, hop, eps, dims, w_sc, w_log_mag, count, length = ctx.config
        group = [1 if i in dims else -1 for i in range(x.ndim)]  # per-group factors broadcast over y
        # d sc / dx = (x - y) / (||x - y|| ||y||) (0 where x == y); d mag / dx = sign(x - y) / (count x).
        a = torch.where(diff_norm > 0, grad * w_sc / (diff_norm * y_norm), 0.0).view(group)
        b = (grad * w_log_mag / count).view(group)
        grad_xp = _magnitude_grad(spec, x, d, a, b, window, n_fft, hop, eps, length)
        return grad_xp, None, None, None, None, None, None, None, None


class _ResolutionSums(torch.autograd.Function):
    """One resolution of the MR-STFT loss as sums, per channel: ``sum (|S_x| - |S_y|)^2`` and
    ``sum |log |S_x| - log |S_y||`` over the batch, bins and frames (``xp``, ``y`` as in
    :class:`_ResolutionLoss`), with the same fused backward pass. Sums of slices of a batch add up to the
    whole batch's (:meth:`StereoLoss.global_loss`)."""

    @staticmethod
    def forward(ctx, xp, y, window, n_fft, hop, eps):
        spec, x = _spectrum(xp, window, n_fft, hop, eps)
        x = x.view(y.shape)
        d = x - y
        ctx.save_for_backward(spec, x, d, window)
        ctx.config = (n_fft, hop, eps, xp.shape[-1])
        return d.square().sum((0, 2, 3)), torch.div(x, y).log_().abs_().sum((0, 2, 3))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_sq, grad_log):
        spec, x, d, window = ctx.saved_tensors
        n_fft, hop, eps, length = ctx.config
        group = (1, -1, 1, 1)  # one factor per channel
        grad_xp = _magnitude_grad(spec, x, d, (2 * grad_sq).view(group), grad_log.view(group), window, n_fft, hop,
                                  eps, length)
        return grad_xp, None, None, None, None, None


def _magnitude_grad(spec, x, d, a, b, window, n_fft, hop, eps, length):
    """Gradient with respect to the padded rows ``xp`` of a loss whose gradient with respect to the magnitudes
    ``x = |S_x|`` is ``a * (x - y) + b * sign(x - y) / x`` (``d = x - y``; ``a``, ``b`` broadcast over ``x``):
    the backward pass of :class:`_ResolutionLoss` and :class:`_ResolutionSums`. Bins whose magnitude was
    clamped to ``sqrt(eps)`` get no gradient."""
    floor = torch.tensor(eps, dtype=x.dtype, device=x.device).sqrt()  # the clamped magnitude, bit for bit
    inv = torch.where(x > floor, x.reciprocal(), 0.0)  # no gradient through clamped bins
    scale = torch.sign(d).mul_(inv).mul_(b).add_(d * a).mul_(inv)  # (d loss / dx) / x
    return _stft_adjoint(spec, scale.view(spec.shape), window, n_fft, hop, length)


# ------------------------------------------------------------------------------------ MR-STFT


class MRSTFTLoss(nn.Module):
    """Multi-resolution STFT loss, the same value as ``auraloss.freq.MultiResolutionSTFTLoss`` 0.4.

    For each resolution m (FFT size, hop, Hann window length; ``center=True``, reflect padding),
    with magnitudes ``|S| = sqrt(max(|STFT|^2, eps))`` of the target y and the prediction y_hat:

        sc_m  = || |S_y| - |S_y_hat| ||_F / || |S_y| ||_F       (spectral convergence)
        mag_m = mean | log|S_y| - log|S_y_hat| |                 (log-magnitude L1)
        loss  = (1/M) * sum_m (w_sc * sc_m + w_log_mag * mag_m)

    i.e. the *average* over the M resolutions (as auraloss and the thesis, eq. 4.24). The norms and the
    mean run over the whole batch and all channels at once (one ratio per resolution, as auraloss),
    not per item. Defaults: the resolutions of the thesis (Table 5) and auraloss.
    Inputs ``(batch, channels, samples)`` with at least ``max(fft_sizes)`` samples; gradients flow to
    ``pred`` only (the target is a constant).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 2048, 512),
        hop_sizes: Sequence[int] = (120, 240, 50),
        win_lengths: Sequence[int] = (600, 1200, 240),
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        eps: float = 1e-8,
    ):
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
            raise ValueError(
                f"fft_sizes, hop_sizes and win_lengths need one entry per resolution; got lengths "
                f"{len(fft_sizes)}, {len(hop_sizes)} and {len(win_lengths)}."
            )
        for n, h, w in zip(fft_sizes, hop_sizes, win_lengths):
            if not (int(h) == h > 0 and int(w) == w and 0 < w <= n and int(n) == n):
                raise ValueError(
                    f"each resolution needs integers hop > 0 and 0 < win_length <= fft_size; got "
                    f"fft_size={n}, hop_size={h}, win_length={w}."
                )
        self.resolutions = tuple((int(n), int(h), int(w)) for n, h, w in zip(fft_sizes, hop_sizes, win_lengths))
        self.w_sc, self.w_log_mag, self.eps = float(w_sc), float(w_log_mag), float(eps)

    def extra_repr(self) -> str:
        return f"resolutions (fft, hop, win)={self.resolutions}, w_sc={self.w_sc}, w_log_mag={self.w_log_mag}"

    def _check(self, pred, target, channels=None) -> None:
        _check_pair(pred, target, channels, full_precision="the STFT loss (torch's FFT)")
        longest = max(n for n, _, _ in self.resolutions)
        if pred.shape[-1] < longest:
            raise ValueError(
                f"pred and target have {pred.shape[-1]} samples, fewer than the largest FFT size "
                f"({longest}). Use longer excerpts or smaller fft_sizes."
            )

    def _each_resolution(self, pred: torch.Tensor, target: torch.Tensor, term):
        """``term(xp, y, window, n_fft, hop)`` for each resolution in turn (a generator): ``xp`` the rows of
        ``pred`` reflect-padded by ``n_fft // 2`` samples at both ends (torch.stft's ``center=True``),
        ``(batch * channels, samples + 2 * (n_fft // 2))``; ``y`` the target's magnitudes ``(batch, channels,
        bins, frames)``, without gradient; ``window`` the Hann window. What every STFT loss here is made of."""
        b, c, t = pred.shape
        target = target.detach().to(pred.dtype)
        for n_fft, hop, win in self.resolutions:
            window = _hann(win, pred.dtype, pred.device)

            def padded(x):  # torch.stft's center=True: reflect-pad n_fft // 2 samples at both ends
                return F.pad(x.reshape(b * c, 1, t), (n_fft // 2, n_fft // 2), mode="reflect").squeeze(1)

            with torch.no_grad():
                y = _spectrum(padded(target), window, n_fft, hop, self.eps)[1]
            yield term(padded(pred), y.view(b, c, *y.shape[1:]), window, n_fft, hop)

    def _loss(self, pred: torch.Tensor, target: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
        """The loss (a scalar), or with ``per_channel`` one MR-STFT loss per channel, shape (channels,)."""
        dims = (0, 2, 3) if per_channel else (0, 1, 2, 3)

        def term(xp, y, window, n_fft, hop):
            return _ResolutionLoss.apply(xp, y, window, n_fft, hop, self.eps, dims, self.w_sc, self.w_log_mag)

        total = 0.0
        for value in self._each_resolution(pred, target, term):
            total = total + value
        return total / len(self.resolutions)

    def _sums(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The sums the per-channel loss is made of, ``(resolutions, 4, channels)``: per resolution and channel
        ``sum (|S_x| - |S_y|)^2``, ``sum |log |S_x| - log |S_y||``, ``sum |S_y|^2`` and the number of bins (over the
        batch, bins and frames). The sums of slices of a batch add up to the whole batch's; :meth:`_from_sums`
        turns them into the loss."""
        def term(xp, y, window, n_fft, hop):
            sq, logs = _ResolutionSums.apply(xp, y, window, n_fft, hop, self.eps)
            return torch.stack([sq, logs, y.square().sum((0, 2, 3)), torch.full_like(sq, y.numel() // y.shape[1])])

        return torch.stack(list(self._each_resolution(pred, target, term)))

    def _from_sums(self, sums: torch.Tensor) -> torch.Tensor:
        """The MR-STFT loss per channel, ``(channels,)``, from :meth:`_sums` (of a whole batch): the spectral
        convergence ``sqrt(sum (|S_x| - |S_y|)^2 / sum |S_y|^2)`` and the mean log difference, averaged over the
        resolutions, as :meth:`_loss` computes them from norms."""
        sq, logs, y_sq, count = sums.unbind(1)
        diff_norm = torch.where(sq > 0, sq, 1.0).sqrt() * (sq > 0)  # no infinite gradient at a perfect match
        return (self.w_sc * diff_norm / y_sq.sqrt() + self.w_log_mag * logs / count).mean(0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss; gradients flow to ``pred``."""
        self._check(pred, target)
        return self._loss(pred, target)


class StereoLoss(nn.Module):
    """Sum-and-difference stereo loss (Steinmetz 2020, sec. 5.4, eqs. 5.1-5.3)::

        loss = w_sum * MRSTFT(L_hat + R_hat, L + R) + w_diff * MRSTFT(L_hat - R_hat, L - R)

    with ``MRSTFTLoss`` (same resolutions and options, passed as keyword arguments). Swapping left and
    right of the prediction only flips the sign of L - R, which the STFT magnitude ignores, so the
    loss is unchanged; a centred source and a hard-panned one still differ (in L - R).

    ``auraloss.freq.SumAndDifferenceSTFTLoss`` 0.4 returns *half* of this value (it averages the two
    terms); we follow the thesis and the tutorial (a plain sum). Inputs: stereo ``(batch, 2, samples)``.
    """

    def __init__(self, w_sum: float = 1.0, w_diff: float = 1.0, **mrstft_kwargs):
        super().__init__()
        self.w_sum, self.w_diff = float(w_sum), float(w_diff)
        self.mrstft = MRSTFTLoss(**mrstft_kwargs)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss; gradients flow to ``pred``."""
        self.mrstft._check(pred, target, channels=2)
        per_channel = self.mrstft._loss(_sum_diff(pred), _sum_diff(target), per_channel=True)
        return self.w_sum * per_channel[0] + self.w_diff * per_channel[1]

    def global_loss(self, pred: torch.Tensor, target: torch.Tensor, total) -> torch.Tensor:
        """The loss of a batch split into slices (one per process of a data-parallel run), from this slice's
        ``pred`` and ``target`` ``(slice, 2, samples)``.

        The spectral convergence is one ratio of norms over the whole batch and the log-magnitude term one
        mean, so a mean of the slices' losses would be another objective. Instead each slice's sums per
        resolution and channel (squared magnitude differences, log differences, squared target magnitudes,
        bins) go through ``total``, which must add them up over the slices (``automix_lite.train``: an
        all-reduce that gradients flow through), and the loss follows from the sums. With ``total = lambda t:
        t`` it is :meth:`forward` of this batch, within float rounding (sums in place of norms), and so is
        its gradient."""
        self.mrstft._check(pred, target, channels=2)
        m = self.mrstft
        per_channel = m._from_sums(total(m._sums(_sum_diff(pred), _sum_diff(target))))
        return self.w_sum * per_channel[0] + self.w_diff * per_channel[1]


def _sum_diff(x: torch.Tensor) -> torch.Tensor:
    """Stereo ``(B, 2, T)`` -> ``(B, 2, T)`` with channel 0 = L + R and channel 1 = L - R."""
    return torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], dim=1)
