"""int8 on the wire: per-channel scales with fp16 outlier rows/channels (``int8``) vs one scale (``int8-tensor``)."""

import math

import pytest
import torch

from fsllm_sim.training.wire import (
    FP16_MAX,
    INT8_CHANNEL_SCALE_BITS,
    INT8_SCALE_BITS,
    int8_bits,
    int8_outliers,
    payload_bits,
    state_bits,
    tensor_bits,
    wire_cast,
)


def zeroed_fraction(x: torch.Tensor, precision: str) -> float:
    """Fraction of the non-zero inputs the receiver gets as exactly 0."""
    nz = x != 0
    return float(((wire_cast(x, precision) == 0) & nz).sum() / nz.sum())


def smollm2_like(seed: int = 0, b: int = 2, L: int = 64, d: int = 576) -> torch.Tensor:
    """A few hidden channels at ~2e4 (SmolLM2's outlier channels), the rest ~N(0, 2^2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, L, d, generator=g) * 2
    for c in (17, 230, 451):
        sign = torch.where(torch.rand(b, L, generator=g) < 0.5, -1.0, 1.0)
        x[..., c] = sign * 2e4 * (0.5 + torch.rand(b, L, generator=g))
    return x


def old_int8_tensor_cast(t: torch.Tensor) -> torch.Tensor:
    """The per-tensor int8 of before (kept as ``int8-tensor``), verbatim."""
    xf = t.detach().float()
    amax = float(xf.abs().max())
    if amax == 0.0:
        return torch.zeros_like(t)
    scale = torch.tensor(amax / 127.0, dtype=torch.float32).item()
    return (torch.round(xf / scale).clamp_(-127, 127) * scale).to(t.dtype)


def test_int8_tensor_is_the_old_per_tensor_int8():
    g = torch.Generator().manual_seed(1)
    for x in (torch.randn(4, 7, 33, generator=g) * 5, smollm2_like(), torch.randn(100, generator=g)):
        assert torch.equal(wire_cast(x, "int8-tensor"), old_int8_tensor_cast(x))
        assert tensor_bits(x, "int8-tensor") == x.numel() * 8 + INT8_SCALE_BITS
    assert payload_bits(1000, "int8-tensor", num_tensors=4) == 8000 + 4 * 32
    state = {"a": torch.randn(3, 5), "b": torch.randn(5, 2)}
    assert state_bits(state, "int8-tensor") == (15 + 10) * 8 + 2 * 32


def test_round_trip_error_bounds():
    x = smollm2_like(seed=3)
    x[0, 0] *= 50  # a massive-activation token (attention sink), as SmolLM2's first position ...
    x[0, 0, [17, 230, 451]] /= 50  # ... whose outlier channels stay ~2e4 (below fp16's max)
    y = wire_cast(x, "int8")
    assert y.shape == x.shape and y.dtype == x.dtype and not y.requires_grad
    rows, chans = int8_outliers(x)
    assert chans.tolist() == [17, 230, 451] and rows.tolist() == [0]
    xr, yr = x.reshape(-1, 576), y.reshape(-1, 576)
    fp16 = xr.clamp(-FP16_MAX, FP16_MAX).half().float()
    assert torch.equal(yr[rows], fp16[rows])  # outlier rows and channels: exactly fp16
    assert torch.equal(yr[:, chans], fp16[:, chans])
    keep_r = torch.ones(xr.shape[0], dtype=torch.bool)
    keep_r[rows] = False
    keep_c = torch.ones(576, dtype=torch.bool)
    keep_c[chans] = False
    xi, yi = xr[keep_r][:, keep_c], yr[keep_r][:, keep_c]
    s = xi.abs().amax(0) / 127  # per-channel step (bf16 rounding of the scale: ≤ 2^-8 relative)
    assert ((yi - xi).abs() <= s * 0.5 * (1 + 2 ** -7) + 1e-7).all()
    assert len(torch.unique(torch.round(yi / yi.abs().amax(0) * 127), dim=0)) > 1
    # much better than per tensor, relative L2 error
    err8 = float((y - x).norm() / x.norm())
    err8t = float((wire_cast(x, "int8-tensor") - x).norm() / x.norm())
    assert err8 < 1e-3 and 5 * err8 < err8t
    # received values are on the grid: casting again changes nothing
    assert torch.equal(wire_cast(y, "int8"), y)


def test_shapes_dtypes_and_edge_cases():
    for x in (torch.randn(10), torch.randn(3, 4, 5).half(), torch.randn(6, 8).bfloat16(), torch.zeros(2, 3),
              torch.randn(1, 9), torch.randn(9, 1), torch.zeros(0, 4)):
        y = wire_cast(x, "int8")
        assert y.shape == x.shape and y.dtype == x.dtype
        assert tensor_bits(x, "int8") >= 0
    z = torch.randn(4, 4)
    z[1, 2] = 0.0
    z[:, 3] = 0.0  # an all-zero channel (scale 0) stays zero
    y = wire_cast(z, "int8")
    assert y[1, 2] == 0 and (y[:, 3] == 0).all()
    with pytest.raises(ValueError, match="inf/nan"):
        wire_cast(torch.tensor([[1.0, float("nan")]]), "int8")
    with pytest.raises(ValueError, match="inf/nan"):
        tensor_bits(torch.tensor([[1.0, float("inf")]]), "int8")
    tiny = torch.randn(16, 8) * 1e-15  # gradients can be tiny: bf16 scales do not underflow (fp16 would)
    assert float(((wire_cast(tiny, "int8") - tiny) * 1e15).norm() / (tiny * 1e15).norm()) < 1e-2


def test_bits_accounting_is_exact_by_hand():
    R, C = 8, 32  # MAX_OUTLIER_FRACTION = 1/16 allows 2 outlier channels of 32
    x = (torch.arange(R * C, dtype=torch.float32).reshape(R, C) % 7 - 3) + 0.5  # |x| in [0.5, 3.5]
    x[:, 3] *= 200
    x[:, 7] *= -200  # two outlier channels
    x[5] *= 50  # one outlier row (its values up to 35000 stay below fp16's max)
    rows, chans = int8_outliers(x)
    assert rows.tolist() == [5] and chans.tolist() == [3, 7]
    expected = (
        1 * C * 16  # the outlier row at fp16
        + 2 * (R - 1) * 16  # the outlier channels (on the other rows) at fp16
        + (C - 2) * (R - 1) * 8  # the int8 values
        + (C - 2) * INT8_CHANNEL_SCALE_BITS  # one 16-bit scale per int8 channel
        + 1 * 3  # outlier row index: ceil(log2 8) = 3 bits
        + 2 * 5  # outlier channel indices: ceil(log2 32) = 5 bits each
        + 4  # outlier row count 0..8: 4 bits
        + 6  # outlier channel count 0..32: 6 bits
    )
    assert expected == 2919
    assert tensor_bits(x, "int8") == int8_bits(R, C, 1, 2) == expected
    assert payload_bits(R * C, "int8", channels=C, outlier_channels=2, outlier_rows=1) == expected
    # the same values in a (2, 4, 16) activation-shaped tensor: same rows × channels, same bits
    assert tensor_bits(x.reshape(2, 4, C), "int8") == expected
    # no outliers: 8 bits per element + one scale per channel + the two (zero) counts
    y = torch.randn(R, C, generator=torch.Generator().manual_seed(0))
    assert [t.numel() for t in int8_outliers(y)] == [0, 0]
    assert tensor_bits(y, "int8") == R * C * 8 + C * 16 + 4 + 6
    assert state_bits({"x": x, "y": y}, "int8") == expected + R * C * 8 + C * 16 + 10


def test_payload_bits_defaults_and_fallback():
    # SmolLM2 activations, b=2, L=64, d=576: defaults assume 4 outlier channels and 2 outlier rows
    n = 2 * 64 * 576
    assert payload_bits(n, "int8", channels=576) == int8_bits(128, 576, 2, 4)
    assert 8.2 < payload_bits(n, "int8", channels=576) / n < 8.4
    assert payload_bits(n, "int8") < payload_bits(n, "int8", channels=576)  # without channels: a lower bound
    with pytest.raises(ValueError):
        payload_bits(n, "int8", channels=577)


def test_smollm2_like_activations_keep_their_signal():
    x = smollm2_like()
    z8, z8t = zeroed_fraction(x, "int8"), zeroed_fraction(x, "int8-tensor")
    assert z8 < 0.01, z8
    assert z8t > 0.80, z8t
    bits = tensor_bits(x, "int8") / x.numel()
    assert bits == int8_bits(128, 576, 0, 3) / x.numel()
    assert 8 < bits < 8.5
    assert math.isclose(tensor_bits(x, "int8-tensor") / x.numel(), 8 + 32 / x.numel())


@pytest.mark.integration
def test_smollm2_split_activations_survive_int8(smollm2_ready):
    """Real SmolLM2-135M hidden state after block 15 (b=2, L=64 Shakespeare): int8 keeps it, int8-tensor not."""
    from fsllm_sim.training.federated_training import TrainingConfig, prepare_model_and_data

    cfg = TrainingConfig(model="smollm2-135m", num_clients=2, batch_size=2, seq_len=64, split=15, rank=8,
                         partition="by_play", max_tokens_per_client=20_000, seed=0)
    lm, data = prepare_model_and_data(cfg)
    batch = next(data.clients[0].batches(2))
    with torch.no_grad():
        out = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True)
    h = out.hidden_states[15]  # what the client sends at split 15 (hidden_states[0] is the embedding)
    assert float(h.abs().max()) > 5000  # SmolLM2's massive activations are there
    z8, z8t = zeroed_fraction(h, "int8"), zeroed_fraction(h, "int8-tensor")
    err8 = float((wire_cast(h, "int8") - h).norm() / h.norm())
    bits8 = tensor_bits(h, "int8") / h.numel()
    print(f"zeroed int8 {z8:.4f} int8-tensor {z8t:.4f}; rel err int8 {err8:.2e}; int8 bits/element {bits8:.3f}")
    assert z8 < 0.02  # measured 0.9 %
    assert z8t > 0.80  # measured 99.8 %
    assert err8 < 1e-2
    assert 8.0 < bits8 < 8.5
