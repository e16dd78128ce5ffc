"""Local response normalization (Krizhevsky et al. 2012, section 3.3), fast on CPU and GPU.

    b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']^2) ** beta

with a window of ``size`` channels around ``c`` (zero padded at the ends). The paper's constants
are k=2, size=5, alpha=1e-4, beta=0.75. ``torch.nn.LocalResponseNorm`` computes the same thing
but divides its alpha by ``size``, so it needs ``alpha=size * 1e-4`` to agree.

Why not ``F.local_response_norm``: it pads a 5-D copy of x^2, runs ``avg_pool3d`` over it (a slow
path in channels_last, the model's default layout) and leaves the backward to autograd through
pad, pool, pow and div. On the 2-core CPU that made the LRN variant train at a third of the
no-norm speed. Here the channel-window sum is one matrix product with a banded C x C matrix
(a single BLAS pass over memory), and a custom autograd function computes the gradient in
closed form:

    d[c]  = k + alpha * S[c],   S[c] = sum_{c' in window(c)} a[c']^2,   b[c] = a[c] * d[c]^-beta
    da[c] = g[c] * d[c]^-beta - 2 * alpha * beta * a[c] * sum_{j : c in window(j)} g[j] * a[j] * d[j]^(-beta-1)

(g = dL/db). Every step is a pointwise op or a window sum along the channel dimension (a matrix
product either way round), so it is fast in contiguous (NCHW) and channels_last (NHWC) memory
alike and keeps the input's layout.

On CUDA (with Triton) the same maths goes through ``torch.compile``, which fuses the forward and
the backward into a few memory-bound kernels instead of ~10 separate passes (it is checked
against the eager function on first use and replaced by it if anything goes wrong). On the CPU
the eager version is used: inductor's CPU kernels for it were 4x slower on the 2-core Xeon
(150 vs 37 ms for both of AlexNet-65's LRN layers, forward + backward, batch 32) and compiling
costs seconds to tens of seconds per process.

Low-precision inputs (bf16/fp16 under autocast) are computed in fp32 and returned in the input's
dtype: with k=2, the normalizer 2 + 1e-4 * S rounds to exactly 2 in bf16 for typical activations,
which would turn LRN into a constant scale.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["LocalResponseNorm", "local_response_norm", "lrn_reference", "IMPLEMENTATIONS"]

#: ``auto``: ``compiled`` on CUDA when Triton is present, else ``eager``.
IMPLEMENTATIONS = ("auto", "eager", "compiled", "torch")


@functools.lru_cache(maxsize=64)
def _band(
    channels: int, before: int, after: int, scale: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """C x C matrix with ``band[src, dst] = scale`` where ``dst - before <= src <= dst + after``."""
    with torch.inference_mode(False):  # cached: must stay usable outside inference mode too
        idx = torch.arange(channels, device=device)
        offset = idx[:, None] - idx[None, :]  # src - dst
        return ((offset >= -before) & (offset <= after)).to(dtype) * scale


def _window_sum(t: torch.Tensor, before: int, after: int, scale: float = 1.0, groups: int = 1) -> torch.Tensor:
    """``scale * sum(t[c - before .. c + after])`` along dim 1, zero padded, in t's memory layout;
    with ``groups`` > 1 the channels are that many equal blocks (the members of a fused model,
    :mod:`ablate.models.fused`) and no window reaches across a block's edge.

    As one matrix product with a banded C x C matrix: a single pass over memory through BLAS,
    3-5x faster than summing shifted copies (5 passes) on the 2-core CPU with both threads,
    about even on one, in either layout. In channels_last the channels are the innermost
    dimension, so ``t`` is an (N*H*W) x C matrix as it lies; in contiguous NCHW it is a batch
    of C x (H*W) matrices.
    """
    channels = t.shape[1] // groups
    band = _band(channels, before, after, scale, t.dtype, t.device)
    last = t.movedim(1, -1)
    if last.is_contiguous():  # channels innermost in memory (channels_last); a block is a row
        return (last.reshape(-1, channels) @ band).view(last.shape).movedim(-1, 1)
    t = t.contiguous()  # NCHW: image n's block g is matrix n * groups + g
    return torch.matmul(band.T, t.reshape(t.shape[0] * groups, channels, -1)).view(t.shape)


def _pads(size: int) -> tuple[int, int]:
    # torch's convention (and the paper's for odd sizes): size // 2 channels before c, the rest after.
    return size // 2, (size - 1) // 2


def _upcast(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class _LRNFunction(torch.autograd.Function):
    """Eager LRN with the closed-form backward above; saves x, d and d^-beta.

    Written for memory traffic, which is what an LRN costs: 5 full-size passes forward and 5
    backward (two of them BLAS), buffers reused in place where a value is dead, and d^-beta as
    exp(-beta * log d), which is ~3x faster than ``pow`` with a fractional exponent on the CPU.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, size: int, alpha: float, beta: float, k: float, groups: int = 1
    ) -> torch.Tensor:
        before, after = _pads(size)
        xf = _upcast(x)
        sq = xf * xf
        d = _window_sum(sq, before, after, scale=alpha, groups=groups).add_(k)
        inv = torch.log(d).mul_(-beta).exp_()  # d ** -beta
        ctx.save_for_backward(x, d, inv)
        ctx.lrn = (before, after, alpha, beta, groups)
        if xf is x:  # fp32: x^2 is dead, its buffer takes the output
            return torch.mul(x, inv, out=sq)
        return (xf * inv).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None, None]:
        x, d, inv = ctx.saved_tensors
        before, after, alpha, beta, groups = ctx.lrn
        xf = _upcast(x)
        g = _upcast(grad) * inv  # g * d^-beta: the direct term, reused below
        t = (g * xf).div_(d)  # g * a * d^(-beta-1)
        # c' is in window(j) iff j is in the mirrored window of c: swap before and after.
        w = _window_sum(t, after, before, groups=groups)
        return g.addcmul_(xf, w, value=-2.0 * alpha * beta).to(x.dtype), None, None, None, None, None


def _lrn_math(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, groups: int = 1) -> torch.Tensor:
    """The formula in differentiable pointwise ops; what torch.compile fuses (fwd and bwd). With
    ``groups``, the channel blocks are a dimension of their own (a view), padded one by one."""
    before, after = _pads(size)
    xf = _upcast(x).unflatten(1, (groups, -1))
    channels = xf.shape[2]
    padded = torch.nn.functional.pad(xf * xf, (0, 0) * (x.dim() - 2) + (before, after))
    s = sum(padded.narrow(2, i, channels) for i in range(size))
    return (xf * (k + alpha * s).pow(-beta)).flatten(1, 2).to(x.dtype)


_compiled: Callable[..., torch.Tensor] | None = None
_compile_failed: str | None = None
_verified: set[tuple[str, torch.dtype]] = set()


def _check_compiled(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> None:
    """Compile forward and backward on a small slice of ``x`` and compare with the eager
    function; raises if either fails or disagrees. Run once per (device type, dtype), so that a
    broken compiler stack shows up here, not as a crash (or wrong numbers) mid-training."""
    assert _compiled is not None
    small = x.detach()[:2]
    for dim in range(2, small.dim()):  # (not the channels: their blocks stay whole)
        small = small.narrow(dim, 0, min(5, small.shape[dim]))
    layout = (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    with torch.inference_mode(False), torch.enable_grad():
        base = small.clone().contiguous(memory_format=layout)
        grad = torch.randn_like(base)
        outs = []
        for fn in (_compiled, _LRNFunction.apply):
            inp = base.clone().requires_grad_(True)
            y = fn(inp, size, alpha, beta, k, groups)
            y.backward(grad)
            outs.append((y.detach().float(), inp.grad.float()))
    tol = 1e-4 if x.dtype == torch.float32 else 2e-2
    for got, want in zip(outs[0], outs[1]):
        if not torch.allclose(got, want, rtol=tol, atol=tol):
            raise RuntimeError(f"compiled LRN disagrees with the eager one by {(got - want).abs().max().item():.3g}")


def _compiled_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> torch.Tensor:
    """``_lrn_math`` under torch.compile (built and checked on first use); falls back to the
    eager function for good if compiling or the check fails, with one warning naming the reason."""
    global _compiled, _compile_failed
    if _compile_failed is None:
        try:
            if _compiled is None:
                # dynamic=None: static shapes first; once a second shape shows up (the other LRN
                # site, the evaluation batch), the dimensions that changed become dynamic.
                _compiled = torch.compile(_lrn_math, fullgraph=True)
            key = (x.device.type, x.dtype)
            if key not in _verified:
                _check_compiled(x, size, alpha, beta, k, groups)
                _verified.add(key)
            return _compiled(x, size, alpha, beta, k, groups)
        except Exception as e:  # noqa: BLE001 - any compiler failure: keep training, slower
            _compile_failed = f"{type(e).__name__}: {e}".splitlines()[0]
            warnings.warn(
                f"compiled LRN unavailable, using the eager one: {_compile_failed}", RuntimeWarning, stacklevel=3
            )
    return _LRNFunction.apply(x, size, alpha, beta, k, groups)


def resolve_impl(impl: str, x: torch.Tensor) -> str:
    """The implementation ``impl`` stands for on ``x``'s device."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown LRN implementation {impl!r}; allowed: {', '.join(IMPLEMENTATIONS)}")
    if impl != "auto":
        return impl
    if x.is_cuda and _has_triton() and _compile_failed is None:
        return "compiled"
    return "eager"


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton

        return bool(has_triton())
    except ImportError:
        return False


def local_response_norm(
    x: torch.Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    impl: str = "auto",
    groups: int = 1,
) -> torch.Tensor:
    """LRN across channels (dim 1) of an N x C x ... tensor, with the paper's ``alpha`` (not
    divided by ``size``). ``impl``: auto | eager | compiled | torch (``F.local_response_norm``).
    ``groups``: the channels are that many equal blocks, each normalized on its own (the members
    of a fused model)."""
    if x.dim() < 3:
        raise ValueError(f"LRN expects N x C x ... input (3 or more dims), got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"LRN size must be >= 1, got {size}")
    if groups < 1 or x.shape[1] % groups:
        raise ValueError(f"LRN groups must divide the {x.shape[1]} channels, got {groups}")
    if torch.compiler.is_compiling():
        # Inside a torch.compile'd model: let the outer compilation fuse the plain maths.
        return _lrn_math(x, size, alpha, beta, k, groups)
    chosen = resolve_impl(impl, x)
    if chosen == "torch":
        blocks = x.unflatten(1, (groups, -1)).flatten(0, 1)  # one image per block (a copy in NHWC)
        out = torch.nn.functional.local_response_norm(blocks, size, alpha=alpha * size, beta=beta, k=k)
        return out.unflatten(0, (x.shape[0], groups)).flatten(1, 2)
    if chosen == "compiled":
        return _compiled_lrn(x, size, alpha, beta, k, groups)
    return _LRNFunction.apply(x, size, alpha, beta, k, groups)


def lrn_reference(
    x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> torch.Tensor:
    """The paper's formula as a literal loop over channels, in float64: slow, for tests only."""
    xd = x.double()
    channels = x.shape[1]
    before, after = _pads(size)
    out = torch.empty_like(xd)
    for c in range(channels):
        lo, hi = max(0, c - before), min(channels - 1, c + after)
        s = (xd[:, lo : hi + 1] ** 2).sum(1)
        out[:, c] = xd[:, c] / (k + alpha * s) ** beta
    return out


class LocalResponseNorm(nn.Module):
    """Local response normalization with the paper's constants and the paper's formula.

    ``b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']^2) ** beta`` with a window of ``size``
    channels centred on ``c``. Note: ``torch.nn.LocalResponseNorm`` divides alpha by ``size``; here
    alpha is the paper's (1e-4), so the torch module needs ``alpha=size * 1e-4`` to agree.
    ``impl`` picks the kernel (see :func:`local_response_norm`); all give the same numbers.
    ``groups`` > 1 normalizes that many channel blocks each on its own (a fused model's members).
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        impl: str = "auto",
        groups: int = 1,
    ) -> None:
        super().__init__()
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown LRN implementation {impl!r}; allowed: {', '.join(IMPLEMENTATIONS)}")
        self.size, self.alpha, self.beta, self.k, self.impl, self.groups = size, alpha, beta, k, impl, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.impl, self.groups)

    def extra_repr(self) -> str:
        groups = f", groups={self.groups}" if self.groups != 1 else ""
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, impl={self.impl}{groups}"
