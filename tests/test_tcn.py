"""The FiLM-conditioned TCN (Steinmetz 2020, sec. 4.3.1, Table 3) and its receptive field (eq. 4.14)."""

import pytest
import torch

from automix_lite.models import TCN, center_crop, receptive_field

THESIS_DILATIONS = [2**i for i in range(10)]


def _tiny(**kw):
    torch.manual_seed(0)
    return TCN(**{**dict(n_blocks=3, kernel_size=3, channels=4, stack_size=10), **kw})


@pytest.mark.parametrize("stacks,expected", [(1, 14323), (2, 28645), (3, 42967)])
def test_receptive_field_matches_thesis(stacks, expected):
    assert receptive_field([15] * 10 * stacks, THESIS_DILATIONS * stacks) == expected
    assert receptive_field([15] * 10 * stacks, THESIS_DILATIONS * stacks, [1] * 10 * stacks) == expected
    assert TCN.preset(f"tcn{10 * stacks}").receptive_field == expected
    assert round(receptive_field([15] * 10, THESIS_DILATIONS) / 44.1, 1) == 324.8  # ms at 44.1 kHz (Table 6)


def test_receptive_field_recursion_and_errors():
    assert receptive_field([7], [1]) == 7  # r_1 = k_1
    assert receptive_field([3, 5], [1, 4], [1, 2]) == 3 + 4 * (2 * 4)  # eq. 4.14 with a stride
    with pytest.raises(ValueError, match="one entry per layer"):
        receptive_field([3, 3], [1])
    with pytest.raises(ValueError, match="empty"):
        receptive_field([], [])
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=r"kernel_sizes\[1\]"):
            receptive_field([3, bad], [1, 2])
    with pytest.raises(ValueError, match=r"strides\[0\]"):
        receptive_field([3], [1], [0])


@pytest.mark.parametrize("kw", [
    dict(n_blocks=1, kernel_size=3, channels=2),
    dict(n_blocks=5, kernel_size=5, channels=3, dilation_growth=3, stack_size=2),
    dict(n_blocks=4, kernel_size=15, channels=2, n_inputs=2, n_outputs=2, cond_dim=3),
])
def test_output_length_is_input_minus_receptive_field_plus_one(kw):
    model = _tiny(**kw)
    dil = [kw.get("dilation_growth", 2) ** (i % kw.get("stack_size", 10)) for i in range(kw["n_blocks"])]
    assert model.receptive_field == receptive_field([kw["kernel_size"]] * kw["n_blocks"], dil)
    n = model.receptive_field + 37
    x = torch.randn(2, kw.get("n_inputs", 1), n)
    cond = torch.rand(2, kw["cond_dim"]) if kw.get("cond_dim") else None
    y = model(x, cond)
    assert y.shape == (2, kw.get("n_outputs", 1), n - model.receptive_field + 1) == (2, y.shape[1], model.output_length(n))
    assert model(x, cond, same_length=True).shape[-1] == n
    with pytest.raises(ValueError, match="receptive field"):
        model(x[..., : model.receptive_field - 1], cond)


def test_impulse_influences_exactly_the_centred_receptive_field():
    model = _tiny(n_blocks=3, kernel_size=5).double().eval()
    rf = model.receptive_field  # 1 + 4 * (1 + 2 + 4) = 29
    n, c = 3 * rf, 3 * rf // 2
    x = torch.randn(1, 1, n, dtype=torch.float64)
    kick = x.clone()
    kick[..., c] += 1.0
    with torch.no_grad():
        changed = (model(kick) - model(x)).abs().squeeze() > 0
        assert changed.nonzero().squeeze().tolist() == list(range(c - rf + 1, c + 1))
        # padded for the same length: the change sits centred on the impulse, rf samples wide
        changed = (model(kick, same_length=True) - model(x, same_length=True)).abs().squeeze() > 0
        half = (rf - 1) // 2
        assert changed.nonzero().squeeze().tolist() == list(range(c - half, c + half + 1))


def test_center_crop():
    x = torch.arange(10.0).view(1, 1, 10)
    assert center_crop(x, 4).flatten().tolist() == [3.0, 4.0, 5.0, 6.0]
    assert center_crop(x, 3).flatten().tolist() == [3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="too short"):
        center_crop(x, 11)


def test_conditioning_changes_the_output_and_bad_cond_is_rejected():
    model = _tiny(cond_dim=3).eval()
    x = torch.randn(2, 1, 64)
    a, b = torch.rand(2, 3), torch.rand(2, 3)
    with torch.no_grad():
        assert torch.equal(model(x, a), model(x, a))
        assert (model(x, a) - model(x, b)).abs().max() > 1e-3
    for bad, match in [(None, "pass cond"), (torch.rand(2, 2), r"\(2, 3\)"), (torch.rand(3), "unsqueeze"),
                       (torch.rand(1, 3), r"\(2, 3\)"), (torch.full((2, 3), float("nan")), "NaN")]:
        with pytest.raises(ValueError, match=match):
            model(x, bad)
    plain = _tiny(cond_dim=0)
    assert plain(x).shape == (2, 1, 64 - plain.receptive_field + 1)
    assert plain(x, torch.zeros(2, 0)).shape == plain(x).shape
    with pytest.raises(ValueError, match="unconditioned"):
        plain(x, a)
    with pytest.raises(ValueError, match="mono"):
        plain(torch.randn(2, 2, 64))


def test_batchnorm_has_no_affine_parameters():
    model = TCN.preset("tiny", cond_dim=4)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == len(model.blocks) == 4
    assert all(not n.affine and n.weight is None and n.bias is None for n in norms)
    assert model.n_params == sum(p.numel() for p in model.parameters())


def test_residual_gains_are_clamped_to_unit_interval():
    model = _tiny(n_blocks=2).double().eval()
    assert model.residual_gains.tolist() == [1.0, 1.0]  # Table 3: init 1.0
    opt = torch.optim.SGD([b.gain_raw for b in model.blocks], lr=1.0)
    model.blocks[0].gain_raw.grad = torch.tensor(-5.0, dtype=torch.float64)  # pushes it up to 6
    model.blocks[1].gain_raw.grad = torch.tensor(5.0, dtype=torch.float64)  # pushes it down to -4
    opt.step()
    assert [b.gain_raw.item() for b in model.blocks] == [6.0, -4.0]
    assert model.residual_gains.tolist() == [1.0, 0.0]
    x = torch.randn(1, 1, 64, dtype=torch.float64)
    y = model(x)
    with torch.no_grad():
        model.blocks[0].gain_raw.fill_(1.0)
        model.blocks[1].gain_raw.fill_(0.0)
    assert torch.equal(model(x), y)  # the forward pass used the clamped gains


def test_gradcheck_float64():
    model = _tiny(n_blocks=2, kernel_size=3, channels=4, cond_dim=2).double().train()
    x = torch.randn(2, 1, 12, dtype=torch.float64, requires_grad=True)
    cond = torch.rand(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, c: model(x, c), (x, cond))
    assert torch.autograd.gradcheck(lambda x, c: model(x, c, same_length=True), (x, cond))


def test_tiny_tcn_learns_a_fixed_gain():
    torch.manual_seed(0)
    model = TCN(n_blocks=2, kernel_size=3, channels=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        x = torch.randn(8, 1, 256) * torch.rand(8, 1, 1)
        y = model(x)
        loss = torch.nn.functional.mse_loss(y, 0.5 * center_crop(x, y.shape[-1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 / 10
