"""BinaryLinear and its quantizers: values, straight-through gradients, and the integer path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bebert.model.binary_linear import ActQuantizer, BinaryLinear, round_ste, sign_ste


def fixed_quantizer(bits: int, signed: bool, step: float) -> ActQuantizer:
    q = ActQuantizer(bits, signed)
    with torch.no_grad():
        q.step.fill_(step)
        q.initialized.fill_(True)
    return q.eval()


def test_signed_4bit_values_round_half_up_and_clamp():
    q = fixed_quantizer(4, True, 0.5)
    x = torch.tensor([-10.0, -1.0, -0.26, -0.25, 0.0, 0.24, 0.25, 0.74, 0.75, 10.0])
    codes = [-8, -2, -1, 0, 0, 0, 1, 1, 2, 7]
    assert q.to_int(x).tolist() == codes
    assert torch.equal(q(x), torch.tensor(codes, dtype=torch.float32) * 0.5)


def test_unsigned_2bit_and_binary_values():
    q = fixed_quantizer(2, False, 1.0)
    assert q.qrange == (0, 3)
    assert q.to_int(torch.tensor([-3.0, 0.4, 0.5, 2.6, 9.0])).tolist() == [0, 0, 1, 3, 3]
    b = fixed_quantizer(1, False, 0.75)  # 1-bit is always +-1
    assert b.signed and b.qrange == (-1, 1)
    x = torch.tensor([-2.0, -0.1, 0.0, 3.0])
    assert b.to_int(x).tolist() == [-1, -1, 1, 1]
    assert torch.equal(b(x), torch.tensor([-0.75, -0.75, 0.75, 0.75]))


def test_step_initialised_from_first_training_batch_at_least_quantization_error():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    q = ActQuantizer(4, True).train()
    q(x)
    assert bool(q.initialized)
    err = lambda s: float((torch.clamp(torch.floor(x / s + 0.5), -8, 7) * s - x).pow(2).mean())  # noqa: E731
    lsq = float(2 * x.abs().mean() / np.sqrt(7))  # LSQ's Gaussian rule: no better than the chosen step
    assert err(q.step.item()) <= err(lsq) and err(q.step.item()) <= err(float(x.abs().max()) / 8)
    one = ActQuantizer(1).train()
    one(x)
    assert torch.isclose(one.step.detach(), x.abs().mean())  # the least-squares magnitude of sign(x)


def test_probability_quantizer_spans_zero_to_one():
    """Attention probabilities of a 64-token row are mostly ~1/64: a step fitted to them would
    saturate every peak. The 'unit' init represents 1.0 exactly."""
    p = torch.softmax(torch.randn(8, 64, 64, generator=torch.Generator().manual_seed(1)), -1)
    q = ActQuantizer(4, signed=False, init="unit").train()
    q(p)
    assert torch.isclose(q.step.detach(), torch.tensor(1 / 15)) and q.qrange == (0, 15)
    assert float(q(torch.tensor([1.0]))) == pytest.approx(1.0)


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_activation_width_1_to_8(bits):
    q = ActQuantizer(bits, True).train()
    codes = q.to_int(q(torch.linspace(-3, 3, 101)))
    lo, hi = q.qrange
    assert int(codes.min()) >= lo and int(codes.max()) <= hi
    with pytest.raises(ValueError, match="activation bits"):
        ActQuantizer(9)


def test_sign_ste_gradient_is_clipped_identity():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.backward(torch.arange(1.0, 8.0))
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0]


def test_round_ste_identity_gradient():
    x = torch.tensor([0.2, 0.5, 1.49, -0.5], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [0, 1, 1, 0]
    y.sum().backward()
    assert x.grad.tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_lsq_step_and_weights_get_gradients(bits):
    torch.manual_seed(bits)
    layer = BinaryLinear(16, 8, act_bits=bits).train()
    x = torch.randn(10, 16)
    layer(x).pow(2).sum().backward()
    assert layer.act_quant.step.grad is not None and layer.act_quant.step.grad.abs() > 0
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
    assert layer.weight.grad.abs().sum() > 0


def calibrated(K, N, bits, signed=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = BinaryLinear(K, N, act_bits=bits, act_signed=signed)
    with torch.no_grad():
        layer.bias.uniform_(-0.3, 0.3, generator=g)
        calib = torch.randn(32, K, generator=g)
        layer.train()
        layer(calib.abs() if not signed else calib)
        layer.eval()
    x = torch.randn(12, K, generator=g)
    return layer, (x.abs() if not signed else x)


@pytest.mark.parametrize("bits, signed", [(1, True), (2, True), (4, False), (8, True)])
@pytest.mark.parametrize("out_bits", [0, 1, 4, 8])
def test_integer_forward_equals_integer_linear(bits, signed, out_bits):
    layer, x = calibrated(40, 9, bits, signed, seed=bits + out_bits)
    integer = layer.to_integer(out_step=0.05, out_bits=out_bits)
    x_int = layer.act_quant.to_int(x)
    # the codes are what the fake-quantized forward multiplies
    assert torch.allclose(layer.act_quant(x), x_int.float() * layer.act_quant.step.abs())
    a = layer.integer_forward(x_int, integer).numpy()
    b = integer.forward(x_int.numpy())
    assert a.dtype == np.int32 and b.dtype == np.int32
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("out_bits", [0, 8])
def test_integer_path_close_to_float_forward(bits, out_bits):
    layer, x = calibrated(64, 16, bits, seed=10 + bits)
    with torch.no_grad():
        y = layer(x).double().numpy()
    spread = np.abs(y).max()
    out_step = spread / 127 if out_bits == 8 else spread / 4096
    integer = layer.to_integer(out_step=out_step, out_bits=out_bits)
    y_int = integer.forward(layer.act_quant.to_int(x).numpy())
    err = np.abs(y_int * out_step - y).max()
    assert err <= 0.5 * out_step + 1e-5 * spread  # half a step of rounding, plus float noise
    if out_bits == 8:
        assert np.abs(y_int).max() <= 127
