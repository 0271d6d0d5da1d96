"""Quantizers (values, straight-through gradients), TWS and the quantized BERT against HF BERT."""

import pytest
import numpy as np
import torch
import transformers

from bebert.model.binary_linear import ActQuantizer, BinaryLinear, round_ste, sign_ste
from bebert.model.quant_bert import (BertShape, FastActQuantizer, QLinear, QuantConfig, bool_ste, build,
                                     dmd_loss, quantize_weight, tws_split, tws_weights)


def test_sign_ste_values_and_clipped_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]


def test_round_ste_half_up_identity_gradient():
    x = torch.tensor([-1.5, -0.5, 0.49, 0.5, 1.5], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [-1, 0, 0, 1, 2]
    y.sum().backward()
    assert x.grad.tolist() == [1] * 5


def test_bool_ste():
    x = torch.tensor([-3.0, -0.2, 0.0, 0.7, 4.0], requires_grad=True)
    y = bool_ste(x)
    assert y.tolist() == [0, 0, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]


@pytest.mark.parametrize("bits,signed", [(2, True), (4, True), (8, False)])
def test_fast_act_quantizer_matches_lsq(bits, signed):
    torch.manual_seed(0)
    ref, fast = ActQuantizer(bits, signed), FastActQuantizer(bits, signed)
    for q in (ref, fast):
        with torch.no_grad():
            q.step.fill_(0.37)
            q.initialized.fill_(True)
    x = torch.randn(4, 50) * 3
    g = torch.randn(4, 50)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ref(x1), fast(x2)
    assert torch.equal(y1, y2)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6)
    assert torch.allclose(ref.step.grad, fast.step.grad, rtol=1e-4, atol=1e-6)
    assert torch.equal(fast.to_int(x), ref.to_int(x))


def test_act_quantizer_4bit_values_and_gradient():
    q = FastActQuantizer(4, True)
    with torch.no_grad():
        q.step.fill_(0.5)
        q.initialized.fill_(True)
    x = torch.tensor([-9.0, -1.1, 0.2, 0.26, 4.0], requires_grad=True)
    y = q(x)
    # codes clamp(floor(x/0.5 + 0.5), -8, 7) = -8, -2, 0, 1, 7
    assert y.tolist() == [-4.0, -1.0, 0.0, 0.5, 3.5]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]  # clamped codes pass no gradient


def test_weight_quantizers_hand_cases():
    w = torch.tensor([[1.0, -0.1, -0.8, 0.05]])
    codes, scale = quantize_weight(w, 1)
    assert codes.tolist() == [[1, -1, -1, 1]] and scale.item() == pytest.approx(0.4875)
    codes, scale = quantize_weight(w, 2)  # threshold 0.7 * 0.4875 = 0.341: keeps 1.0 and -0.8
    assert codes.tolist() == [[1, 0, -1, 0]] and scale.item() == pytest.approx(0.9)
    codes, scale = quantize_weight(torch.tensor([[0.7, -0.35, 0.1]]), 4)  # scale 0.7 / 7
    assert codes.tolist() == [[7, -3, 1]] and scale.item() == pytest.approx(0.1)


def test_weight_ste_gradients_reach_latent_weights():
    for bits in (1, 2, 4):
        w = torch.tensor([[0.3, -0.6, 0.05, 1.5]], requires_grad=True)
        codes, scale = quantize_weight(w, bits)
        (scale[:, None] * codes).sum().backward()
        assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_qlinear_1bit_is_binary_linear():
    torch.manual_seed(0)
    ref = BinaryLinear(16, 8, act_bits=4)
    q = QLinear(16, 8, weight_bits=1, act_bits=4)
    q.load_state_dict(ref.state_dict())
    x = torch.randn(3, 16)
    ref.train(), q.train()
    assert torch.allclose(ref(x), q(x), atol=1e-6)
    assert torch.equal(ref.alpha(), q.alpha())
    assert isinstance(q, BinaryLinear)
    layer = q.to_integer(out_step=0.1)  # the compiler's entry point still works
    assert layer.sign.shape == (8, 16)


def test_tws_split_equivalence_of_weights():
    torch.manual_seed(1)
    w = torch.randn(6, 40)
    w1, w2 = tws_weights(w)
    assert torch.allclose(w1 + w2, w, atol=1e-6)
    (c1, s1), (c2, s2), (ct, st) = quantize_weight(w1, 1), quantize_weight(w2, 1), quantize_weight(w, 2)
    assert torch.allclose(s1[:, None] * c1 + s2[:, None] * c2, st[:, None] * ct, atol=1e-6)
    assert torch.allclose(s1, st / 2, atol=1e-6) and torch.allclose(s2, st / 2, atol=1e-6)


def tiny_shape(num_labels=2):
    return BertShape(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                     max_position=32, type_vocab_size=2, layer_norm_eps=1e-12, num_labels=num_labels)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return ids, torch.zeros_like(ids), mask


def test_tws_split_model_equals_ternary_model():
    torch.manual_seed(0)
    ternary = build(tiny_shape(), QuantConfig.preset("binarybert").ternary())
    ternary.train()
    ternary(*_batch())  # initialise the LSQ steps
    ternary.eval()
    binary = tws_split(ternary).eval()
    assert binary.quant.split and binary.quant.weight_bits == 1
    assert binary.layers[0].ffn_in.weight.shape == (32, 32)  # twice the input width
    with torch.no_grad():
        assert torch.allclose(ternary(*_batch()), binary(*_batch()), atol=1e-4)


def test_fp_quantbert_matches_hf_bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    hf = transformers.BertModel(cfg).eval()
    ours = build(BertShape.from_hf(cfg, 2), QuantConfig.preset("fp"), init_from=hf.state_dict()).eval()
    ids, tt, mask = _batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=tt, attention_mask=mask)
        _, internals = ours(ids, tt, mask, internals=True)
    keep = mask.bool()
    assert torch.allclose(internals["hidden"][-1][keep], ref.last_hidden_state[keep], atol=1e-5)


@pytest.mark.parametrize("base", ["binarybert", "bibert"])
def test_quantized_models_train_step(base):
    torch.manual_seed(0)
    model = build(tiny_shape(), QuantConfig.preset(base)).train()
    teacher = build(tiny_shape(), QuantConfig.preset("fp")).eval()
    ids, tt, mask = _batch()
    logits, s_int = model(ids, tt, mask, internals=True)
    with torch.no_grad():
        _, t_int = teacher(ids, tt, mask, internals=True)
    loss = logits.logsumexp(-1).sum() + dmd_loss(s_int["qkv"], t_int["qkv"], mask).sum()
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "layers.0.attn.query.weight" in n]
    assert grads[0] is not None and grads[0].abs().sum() > 0
    if base == "bibert":
        assert set(torch.unique(bool_ste(s_int["scores"][0])).tolist()) <= {0.0, 1.0}


def test_quant_config_validation():
    for bits in range(1, 9):  # any activation width 1..8
        assert QuantConfig(act_bits=bits, attn_bits=bits).act_bits == bits
    assert QuantConfig.preset("binarybert", act_bits=3).attn_bits == 3
    with pytest.raises(ValueError, match="act_bits"):
        QuantConfig(act_bits=9)
    with pytest.raises(ValueError, match="bibert has 1-bit"):
        QuantConfig.preset("bibert", act_bits=4)
    with pytest.raises(ValueError, match="split_scales"):
        QuantConfig(split=True, split_scales="row")
    with pytest.raises(ValueError, match="base"):
        QuantConfig.preset("xnor")
    assert QuantConfig.preset("bibert").act_bits == 1


def test_tws_split_gives_each_half_its_own_scale():
    """BinaryBERT: alpha1 sign(w1) + alpha2 sign(w2). At the split both scales are alpha_t / 2 (the
    model equals the ternary one); once trained apart the cancelling pairs no longer give 0, where
    one shared scale keeps the member ternary for ever."""
    torch.manual_seed(0)
    ternary = build(tiny_shape(), QuantConfig.preset("binarybert").ternary()).train()
    ternary(*_batch())
    half, shared = tws_split(ternary.eval(), "half"), tws_split(ternary, "shared")
    lin = half.layers[0].ffn_in
    codes, scale = lin.codes_and_scale()
    assert scale.shape == (32, 2) and torch.allclose(scale[:, 0], scale[:, 1], atol=1e-6)
    with torch.no_grad():
        lin.weight[:, :16] *= 1.5  # training moves the halves apart
        shared.layers[0].ffn_in.weight[:, :16] *= 1.5
    _, scale = lin.codes_and_scale()
    assert not torch.allclose(scale[:, 0], scale[:, 1])
    with torch.no_grad():  # shared: alpha (s1 + s2) in {-2a, 0, 2a}; half: the 0 level is a1 - a2 != 0
        w_half, w_shared = lin.effective_weight(), shared.layers[0].ffn_in.effective_weight()
    assert bool((w_shared == 0).any()) and not bool((w_half == 0).any())
    assert all(len(torch.unique(r.abs())) <= 2 for r in w_shared)


def test_a_scale_per_half_exports_each_half_product_inside_int32():
    """to_integer_halves: v = acc_lo mult + acc_hi mult_hi + bias with K max|x| |mult_h| + |bias|
    inside int32, so that each half's product is exact in the int32 stream the compiler writes it
    to (compiler/split_scales.py); the two multipliers keep the ratio of the halves' scales."""
    torch.manual_seed(0)
    ternary = build(tiny_shape(), QuantConfig.preset("binarybert").ternary()).train()
    ternary(*_batch())
    lin = tws_split(ternary.eval(), "half").layers[0].ffn_in
    with torch.no_grad():
        lin.weight[:, :16] *= 1.5
    layer, mult_hi = lin.to_integer_halves(out_step=0.01, out_bits=16)
    k = layer.in_features // 2
    qmax = max(abs(v) for v in lin.act_quant.qrange)
    for m, b in ((layer.mult, layer.bias), (mult_hi, 0 * layer.bias)):
        assert int((k * qmax * np.abs(m.astype(np.int64)) + np.abs(b.astype(np.int64))).max()) < 2 ** 31
    _, scale = lin.codes_and_scale()
    ratio = (scale[:, 1] / scale[:, 0]).double().numpy()
    assert np.allclose(mult_hi / layer.mult, ratio, rtol=1e-3)


def test_half_width_split_member_has_the_backbone_binary_size():
    """A half-width ternary model (half the heads and FFN neurons) split by TWS holds exactly the
    binary weights of the unsplit full-width model; the full-width split holds twice as many."""
    from bebert.model.prune import keep_top, prune

    torch.manual_seed(0)
    s = BertShape(vocab_size=50, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=32,
                  max_position=32, type_vocab_size=2, layer_norm_eps=1e-12, num_labels=2)
    full = build(s, QuantConfig.preset("binarybert"))
    h, n = torch.rand(2, 4), torch.rand(2, 32)
    narrow = prune(build(s, QuantConfig.preset("fp")), keep_top(h, 2), keep_top(n, 16))
    assert (narrow.shape.num_heads, narrow.shape.head_dim, narrow.shape.intermediate_size) == (2, 4, 16)
    split = tws_split(build(narrow.shape, QuantConfig.preset("binarybert").ternary(), init_from=narrow))
    wide = tws_split(build(s, QuantConfig.preset("binarybert").ternary()))

    def binary_weights(m):
        return sum(mod.weight.numel() for mod in m.layers.modules() if isinstance(mod, QLinear))
    assert binary_weights(split) == binary_weights(full) and binary_weights(wide) == 2 * binary_weights(full)
    split.eval()(*_batch())  # runs: Q/K/V are 8 wide for 16 hidden


def test_pruned_model_equals_the_masked_full_model():
    from bebert.model.prune import importance, keep_top, prune, task_loss_fn

    torch.manual_seed(1)
    s = BertShape(vocab_size=50, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=32,
                  max_position=32, type_vocab_size=2, layer_norm_eps=1e-12, num_labels=2)
    m = build(s, QuantConfig.preset("fp")).eval()
    ids, tt, mask = _batch()
    h_imp, n_imp = importance(m, [((ids, tt, mask), torch.tensor([0, 1, 1]))], task_loss_fn(False))
    assert h_imp.shape == (2, 4) and n_imp.shape == (2, 32) and bool((h_imp > 0).any())
    heads, neurons = keep_top(h_imp, 2), keep_top(n_imp, 16)
    p = prune(m, heads, neurons).eval()
    hm, nm = torch.zeros(2, 4), torch.zeros(2, 32)
    for li in range(2):
        hm[li, heads[li]], nm[li, neurons[li]] = 1, 1
    for li, layer in enumerate(m.layers):
        layer.attn.register_forward_hook(lambda mod, i, o, li=li: (o[0] * hm[li].repeat_interleave(4), o[1], o[2]))
        layer.ffn_out.register_forward_pre_hook(lambda mod, i, li=li: (i[0] * nm[li],))
    with torch.no_grad():
        assert torch.allclose(m(ids, tt, mask), p(ids, tt, mask), atol=1e-5)
    assert torch.equal(p.layers[1].attn.teacher_heads, heads[1])


def test_dmd_loss_is_normalised_over_real_tokens():
    """Padding an example must not change its DMD loss (averaging over padded positions made it
    (T/n)^2 smaller)."""
    torch.manual_seed(2)
    real = [tuple(torch.randn(1, 2, 5, 4) for _ in range(3))]
    other = [tuple(torch.randn(1, 2, 5, 4) for _ in range(3))]
    pad = lambda qkv: [tuple(torch.cat([t, torch.randn(1, 2, 11, 4)], 2) for t in layer) for layer in qkv]  # noqa: E731
    short = dmd_loss(real, other, torch.ones(1, 5))
    long = dmd_loss(pad(real), pad(other), torch.cat([torch.ones(1, 5), torch.zeros(1, 11)], 1))
    assert torch.allclose(short, long, rtol=1e-5) and float(short) > 0


def test_fused_binarization_gradient_equals_autograd():
    from bebert.model.binary_linear import binarize

    w = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 7, dtype=torch.float64)
    (binarize(w) * g).sum().backward()
    fused, w.grad = w.grad.clone(), None
    (w.abs().mean(1)[:, None] * sign_ste(w) * g).sum().backward()
    assert torch.allclose(fused, w.grad)


def test_evaluation_binarizes_once_and_follows_training():
    torch.manual_seed(3)
    model = build(tiny_shape(), QuantConfig.preset("binarybert")).train()
    model(*_batch())
    lin = model.layers[0].ffn_in
    model.eval()
    with torch.no_grad():
        a = lin.effective_weight()
        assert lin.effective_weight() is a  # cached while the weights do not change
        lin.weight.mul_(-1)                 # an optimizer step changes them
        assert torch.equal(lin.effective_weight(), -a)


def test_members_use_the_gelu_the_integer_path_computes():
    """Quantized members train with I-BERT's erf polynomial, so FFN2's input codes of the float model
    are the integer i-GELU's (exact GELU differs from it by up to 0.02: 2 % of 4-bit codes)."""
    from bebert import integer_ops as I
    from bebert.model.quant_bert import ibert_gelu

    assert QuantConfig.preset("binarybert").gelu == "ibert" and QuantConfig.preset("fp").gelu == "erf"
    q = torch.arange(-600, 600)
    s_in, s_out = 0.01, 0.08
    codes = I.apply_gelu(q, I.prepare_gelu(s_in, s_out, 4, True)).to(torch.int64)
    f = torch.clamp(torch.floor(ibert_gelu(q.double() * s_in) / s_out + 0.5), -8, 7).to(torch.int64)
    assert torch.equal(codes, f)
    assert (ibert_gelu(torch.linspace(-6, 6, 101)) - torch.nn.functional.gelu(torch.linspace(-6, 6, 101))).abs().max() < 0.02
