"""Depthwise 1-D convolution through the FFT, for training on the CPU.

PyTorch's CPU kernels for a depthwise ``conv1d`` (``groups == channels``) with QuartzNet's long kernels (33 to 87
taps) run at a few GFLOP/s, forward and backward, and take most of a QuartzNet/CitriNet training step. The same
convolution through ``torch.fft`` costs a few real FFTs of ``n >= T + k - 1`` points per row, independent of the
kernel length. Measured here (2026-12-07, 1 thread, load ~9, batch 8, 256 channels, 300 frames), forward +
backward per conv: kernels of 33 / 63 / 87 taps (the last dilated by 2) 5 + 9 / 6 + 8 / 6 + 10 ms through the FFT,
12 + 19 / 20 + 28 / 27 + 38 ms with ``F.conv1d``. The result is the same convolution up to float rounding (the
tests compare it with ``F.conv1d`` in float64, and a model's loss and gradients in float32).

:func:`depthwise_conv1d_fft` takes ``F.conv1d``'s "same"-padded arguments (any stride and dilation); its backward
is written out (two inverse FFTs and one forward FFT), so it costs about what the forward costs.
"""

from __future__ import annotations

import torch


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (sizes pocketfft/MKL transform fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p5 = p3
        while p5 < best:
            m = p5
            while m < n:
                m *= 2
            best = min(best, m)
            p5 *= 5
        p3 *= 3
    return best


class _DepthwiseFFT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: int, dilation: int, stride: int):
        # y[t] = sum_j w[j] x[t + j*d - padding] = sum_m wr[m] x[(t + m) mod n]: a circular cross-correlation,
        # irfft(X * conj(Wr)), with tap j of the kernel at m = j*d - padding (mod n) of a length-n row wr. With
        # n >= T + span - 1 the wrapped indices land on the zeros past T (no padding of x); a stride keeps every
        # stride-th output.
        channels, _, k = weight.shape
        t = x.shape[-1]
        n = _fft_size(t + dilation * (k - 1))
        taps = (torch.arange(k, device=x.device) * dilation - padding) % n
        wr = weight.new_zeros(channels, n)
        wr[:, taps] = weight[:, 0]
        xf = torch.fft.rfft(x, n=n)
        wf = torch.fft.rfft(wr)
        y = torch.fft.irfft(xf * wf.conj(), n=n)[..., :t:stride]
        ctx.save_for_backward(xf, wf, taps)
        ctx.shape = (t, n, stride)
        return y.contiguous()

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        xf, wf, taps = ctx.saved_tensors
        t, n, stride = ctx.shape
        if stride > 1:  # the gradient of the outputs the stride dropped is 0
            full = grad_y.new_zeros(*grad_y.shape[:-1], t)
            full[..., ::stride] = grad_y
            grad_y = full
        gf = torch.fft.rfft(grad_y, n=n)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # d/dx[s] = sum_t g[t] wr[(s - t) mod n]: a circular convolution
            grad_x = torch.fft.irfft(gf * wf, n=n)[..., :t].contiguous()
        if ctx.needs_input_grad[1]:  # d/dwr[m] = sum_{b,t} g[b, t] x[b, (t + m) mod n]: a circular correlation
            grad_w = torch.fft.irfft((xf * gf.conj()).sum(0), n=n)[:, taps].unsqueeze(1)
        return grad_x, grad_w, None, None, None


def depthwise_conv1d_fft(
    x: torch.Tensor, weight: torch.Tensor, padding: int, dilation: int = 1, stride: int = 1
) -> torch.Tensor:
    """``F.conv1d(x, weight, stride=stride, padding=padding, dilation=dilation, groups=C)`` for x (B, C, T),
    weight (C, 1, k), "same" padding (``2 * padding == dilation * (k - 1)``), no bias, through the FFT."""
    return _DepthwiseFFT.apply(x, weight, padding, dilation, stride)


def conv_fft(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` through :func:`depthwise_conv1d_fft` (where :func:`fft_applies`)."""
    return depthwise_conv1d_fft(x, conv.weight, conv.padding[0], conv.dilation[0], conv.stride[0])


def fft_applies(conv: torch.nn.Conv1d, x: torch.Tensor) -> bool:
    """Whether ``conv`` on ``x`` can take the FFT path: a depthwise, unbiased, "same"-padded conv with a
    kernel of at least 9 taps, on a float32/64 CPU tensor, outside autocast and ONNX/TorchScript tracing; a plain
    ``nn.Conv1d`` without hooks (QAT's conv and anything hooked keep their own forward)."""
    (k,), (p,), (d,) = conv.kernel_size, conv.padding, conv.dilation
    return (
        type(conv) is torch.nn.Conv1d  # not a subclass (QAT's fake-quantizing conv), no hooks
        and not conv._forward_hooks
        and not conv._forward_pre_hooks
        and k >= 9
        and conv.groups == conv.in_channels == conv.out_channels
        and conv.bias is None
        and 2 * p == d * (k - 1)
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.onnx.is_in_onnx_export()
        and not torch.compiler.is_compiling()  # torch.compile / torch.export see the plain conv
    )


def set_fft_depthwise(model: torch.nn.Module, enabled: bool) -> int:
    """Route ``model``'s depthwise convs (speechtao.asr.models.MaskedConv1d) through the FFT where
    :func:`fft_applies`, or back to ``F.conv1d``; returns how many convs have a long depthwise kernel."""
    n = 0
    for m in model.modules():
        if hasattr(m, "fft") and isinstance(getattr(m, "conv", None), torch.nn.Conv1d):
            m.fft = enabled
            c = m.conv
            n += int(c.groups == c.in_channels == c.out_channels and c.kernel_size[0] >= 9)
    return n
