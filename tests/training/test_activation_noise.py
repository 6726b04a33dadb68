"""The Gaussian-noise defence on the activations in real training (``training.activation_noise_sigma``).

σ = 0 is the run of before bit for bit; σ > 0 sends wire_cast(hidden + σ·rms·z) with z from the client's own
seeded generator (reproducible, different per client), while the client applies the received gradient to its
clean activations (straight-through). Evaluation stays noise-free. Under protocol fl the field is refused, and a
calibration measured at another σ (or without it) says so in one line.
"""
import json

import pytest
import torch
from test_device import _cfg, assert_losses_of_before
from training_helpers import learnable_batch, make_fake_data

from fsllm_sim.config import problem_fingerprint, scenario_from_dict
from fsllm_sim.config.loader import field_spec
from fsllm_sim.config.schema import Scenario
from fsllm_sim.convergence import builtin_calibration_path, load_convergence, measured_at
from fsllm_sim.errors import ConfigError
from fsllm_sim.training.defences import MAX_NOISE_SIGMA, gaussian_noise, token_rms
from fsllm_sim.training.federated_training import TrainingConfig, run_federated_training
from fsllm_sim.training.from_scenario import training_config
from fsllm_sim.training.messages import GradientMessage
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem, noise_generator
from fsllm_sim.training.wire import int8_outliers, wire_cast

FIELD = "training.activation_noise_sigma"


def _losses(result) -> torch.Tensor:
    return torch.tensor(result.val_losses + result.train_losses, dtype=torch.float64)


def _system(sigma: float, precision: str = "fp32", **kw) -> SplitFedSystem:
    cfg = SplitFedConfig(split=2, rank=4, activation_precision=precision, activation_noise_sigma=sigma, **kw)
    return SplitFedSystem(load_model("tiny-llama", seed=0), cfg, num_clients=2)


def _batch(seed: int = 5):
    return learnable_batch(torch.Generator().manual_seed(seed), 4, 16)


def _clean(client: int = 0) -> torch.Tensor:
    """The activations client ``client`` computes on ``_batch()``, as a twin system without noise sends them on
    the fp32 wire (the identity): the same model, adapters and batch, so the clean values the noise is added to."""
    return _system(0.0).clients[client].forward(_batch()).activations.detach()


# ----------------------------------------------------------------------------- the losses


def test_sigma_zero_is_the_run_without_the_field_bit_for_bit():
    default = run_federated_training(_cfg(), data=make_fake_data(2, 16), progress=False)
    zero = run_federated_training(_cfg(activation_noise_sigma=0.0), data=make_fake_data(2, 16), progress=False)
    assert torch.equal(_losses(default), _losses(zero))
    assert_losses_of_before(zero, "fp16")  # the losses of before the defence existed
    assert all(c.noise_generator is None for c in _system(0.0).clients)  # no generator without noise


def test_noise_changes_the_losses_and_a_rerun_is_byte_identical():
    base = run_federated_training(_cfg(), data=make_fake_data(2, 16), progress=False)
    noisy = [run_federated_training(_cfg(activation_noise_sigma=0.5), data=make_fake_data(2, 16), progress=False)
             for _ in range(2)]
    assert torch.equal(_losses(noisy[0]), _losses(noisy[1]))
    assert not torch.equal(_losses(noisy[0]), _losses(base))
    # the noise reaches the server's loss (training), not the initial evaluation (which has no noise)
    assert noisy[0].val_losses[0] == base.val_losses[0]
    assert noisy[0].train_losses != base.train_losses
    other_seed = run_federated_training(_cfg(activation_noise_sigma=0.5, seed=1), data=make_fake_data(2, 16),
                                        progress=False)
    assert not torch.equal(_losses(other_seed), _losses(noisy[0]))


def test_each_client_has_its_own_reproducible_noise_stream():
    system = _system(1.0)
    torch.manual_seed(123)  # the global torch generator plays no part
    m0, m1 = system.clients[0].forward(_batch()), system.clients[1].forward(_batch())
    h0, h1 = _clean(0), _clean(1)
    assert torch.equal(h0, h1)  # same adapters at round 0, same batch: same clean activations
    assert not torch.equal(m0.activations, m1.activations)  # different noise
    for k, msg, h in ((0, m0, h0), (1, m1, h1)):
        assert torch.equal(msg.activations, gaussian_noise(h.detach(), 1.0, noise_generator(0, k)))
    torch.manual_seed(7)
    again = _system(1.0)
    assert torch.equal(again.clients[0].forward(_batch()).activations, m0.activations)
    a = torch.randn(8, generator=noise_generator(0, 0))
    assert not torch.equal(a, torch.randn(8, generator=noise_generator(0, 1)))
    assert not torch.equal(a, torch.randn(8, generator=noise_generator(1, 0)))


# ----------------------------------------------------------------------------- the message


def test_sigma_one_adds_noise_of_each_tokens_own_rms():
    system = _system(1.0)
    msg = system.clients[0].forward(_batch())
    hidden = _clean()
    ratio = token_rms(msg.activations - hidden) / token_rms(hidden)  # per token
    assert ratio.numel() == 4 * 16
    assert float(ratio.mean()) == pytest.approx(1.0, rel=0.10)
    clean = _system(0.0)
    clean_msg = clean.clients[0].forward(_batch())
    assert msg.payload_bits == clean_msg.payload_bits and msg.side_bits == clean_msg.side_bits


@pytest.mark.parametrize("precision", ["int8", "int8-tensor", "fp16"])
def test_the_wire_cast_comes_after_the_noise(precision):
    system = _system(1.0, precision)
    msg = system.clients[0].forward(_batch())
    hidden = _clean()
    noisy = gaussian_noise(hidden, 1.0, noise_generator(0, 0))  # what the device computed before casting
    assert torch.equal(msg.activations, wire_cast(noisy, precision))
    x, sent = noisy.reshape(-1, noisy.shape[-1]).float(), msg.activations.reshape(-1, noisy.shape[-1]).float()
    if precision == "fp16":
        assert torch.equal(sent, x.half().float())
        return
    if precision == "int8-tensor":
        scale = torch.tensor(float(x.abs().max()) / 127.0).expand(x.shape[1])
        keep_r = torch.ones(x.shape[0], dtype=torch.bool)
        keep_c = torch.ones(x.shape[1], dtype=torch.bool)
    else:  # per channel, scales of the noisy tensor (outlier rows/channels travel at fp16)
        rows, chans = int8_outliers(noisy)
        keep_r = torch.ones(x.shape[0], dtype=torch.bool)
        keep_r[rows] = False
        keep_c = torch.ones(x.shape[1], dtype=torch.bool)
        keep_c[chans] = False
        scale = (x[keep_r].abs().amax(0) / 127.0).to(torch.bfloat16).float()
    q = sent[keep_r][:, keep_c] / scale[keep_c]
    assert keep_r.sum() > 0 and keep_c.sum() > 0
    assert torch.allclose(q, q.round(), atol=1e-3) and float(q.abs().max()) <= 127 + 1e-3  # on the int8 grid
    assert not torch.allclose(sent, x)  # and it really is quantised


def test_the_gradient_the_client_applies_is_unchanged_by_the_noise():
    """Straight-through: the same received gradient gives the same client update with and without noise."""
    g = torch.Generator().manual_seed(11)
    states = []
    for sigma in (0.0, 2.0):
        system = _system(sigma, optimizer="sgd", learning_rate=0.5)
        client = system.clients[0]
        before = {k: v.detach().clone() for k, v in client.state.items()}
        msg = client.forward(_batch())
        if not states:
            grad = torch.randn(msg.activations.shape, generator=g)
        client.backward(GradientMessage(client_id=0, seq=msg.seq, gradient=grad, precision="fp32",
                                        payload_bits=0, loss=0.0))
        states.append({k: v.detach().clone() for k, v in client.state.items()})
        assert any(not torch.equal(before[k], states[-1][k]) for k in before)  # it did update
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_evaluation_has_no_noise():
    clean, noisy = _system(0.0), _system(5.0)
    val = learnable_batch(torch.Generator().manual_seed(99), 8, 16)
    for through_wire in (False, True):
        assert clean.evaluate(val, through_wire=through_wire).loss == noisy.evaluate(val, through_wire=through_wire).loss


# ----------------------------------------------------------------------------- the scenario


def test_the_field_reaches_the_training_configuration():
    assert field_spec(Scenario, FIELD).le == MAX_NOISE_SIGMA and field_spec(Scenario, FIELD).ge == 0
    assert Scenario().training.activation_noise_sigma == 0.0
    for protocol in ("sfl", "sl"):
        s = scenario_from_dict({"protocol": protocol, "training": {"activation_noise_sigma": 0.25}})
        cfg = training_config(s)
        assert cfg.activation_noise_sigma == 0.25 and cfg.system_config().activation_noise_sigma == 0.25
    assert training_config(scenario_from_dict({})).activation_noise_sigma == 0.0


@pytest.mark.parametrize("value, text", [(-1, "-1"), (1e9, "1e9"), (float("nan"), ".nan"), ("loud", "loud"),
                                         (float("inf"), ".inf"), (True, "true"), (None, "null")])
def test_hostile_values_are_one_line_errors_naming_the_field(tmp_path, value, text):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"training": {"activation_noise_sigma": value}})
    msg = str(info.value)
    assert FIELD in msg and "\n" not in msg and "100" in msg
    f = tmp_path / "s.yaml"
    f.write_text(f"training:\n  activation_noise_sigma: {text}\n")
    from fsllm_sim.config import load_scenario

    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    assert FIELD in str(info.value) and "\n" not in str(info.value)


def test_the_engine_configuration_refuses_a_bad_sigma():
    with pytest.raises(ConfigError, match="activation_noise_sigma"):
        TrainingConfig(activation_noise_sigma=-0.5).validate()
    with pytest.raises(ConfigError, match="activation_noise_sigma"):
        _system(float("nan"))


def test_protocol_fl_with_noise_fails_in_one_line():
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"protocol": "fl", "training": {"activation_noise_sigma": 0.5}})
    msg = str(info.value)
    assert FIELD in msg and "fl" in msg and "\n" not in msg
    assert scenario_from_dict({"protocol": "fl", "training": {"activation_noise_sigma": 0}}).protocol == "fl"


def test_fingerprints_keep_their_values_without_noise_and_change_with_it():
    base = scenario_from_dict({})
    assert problem_fingerprint(base) == problem_fingerprint(
        scenario_from_dict({"training": {"activation_noise_sigma": 0.0}}))
    assert problem_fingerprint(base) != problem_fingerprint(
        scenario_from_dict({"training": {"activation_noise_sigma": 0.5}}))


# ----------------------------------------------------------------------------- the calibration's regime


def _like_shipped(sigma: float, **extra):
    at = measured_at(json.loads(builtin_calibration_path().read_text()))
    lr = at["learning_rate"] if "learning_rate" in at else next(iter(at["best_learning_rates"].values()))
    return scenario_from_dict({
        "model": {"name": at["model"]}, "clients": {"count": at["num_clients"]},
        "training": {"batch_size": at["batch_size"], "seq_len": at["seq_len"],
                     "local_iterations": at["local_iterations"], "learning_rate": lr,
                     "activation_precision": at["activation_precision"], "activation_noise_sigma": sigma},
        "lora": {"alpha_per_rank": at["lora_alpha_per_rank"], "scaling": at["lora_scaling"]},
        "data": {"partition": at["partition"]}, **extra})


def test_a_calibration_without_the_key_was_measured_without_noise():
    assert "activation_noise_sigma" not in measured_at(json.loads(builtin_calibration_path().read_text()))
    assert load_convergence(_like_shipped(0.0)).regime_warnings(_like_shipped(0.0)) == []
    s = _like_shipped(0.5)
    warnings = load_convergence(s).regime_warnings(s)
    assert len(warnings) == 1 and "measured without activation noise" in warnings[0] and "\n" not in warnings[0]


def test_a_calibration_that_records_sigma_warns_when_the_scenario_differs(tmp_path):
    shipped = json.loads(builtin_calibration_path().read_text())
    shipped["config"] = {**shipped["config"], "activation_noise_sigma": 0.5}
    f = tmp_path / "cal.json"
    f.write_text(json.dumps(shipped))
    assert measured_at(shipped)["activation_noise_sigma"] == 0.5
    conv = {"convergence": {"calibration": str(f)}}
    same = _like_shipped(0.5, **conv)
    assert load_convergence(same).regime_warnings(same) == []
    for sigma in (0.0, 1.0):
        s = _like_shipped(sigma, **conv)
        warnings = load_convergence(s).regime_warnings(s)
        assert len(warnings) == 1 and "activation noise sigma 0.5" in warnings[0] and "\n" not in warnings[0]
