"""FedAvg arithmetic (θ = Σ n_k/Σn θ_k) checked by hand, in the FS, the MS (v1) and a whole round."""

import pytest
import torch
from training_helpers import learnable_batch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.fed_server import FederatedServer, fedavg
from fsllm_sim.training.messages import AdapterMessage
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem


def test_fedavg_by_hand():
    s1 = {"w": torch.tensor([1.0, 2.0]), "v": torch.tensor([[0.0]])}
    s2 = {"w": torch.tensor([3.0, 6.0]), "v": torch.tensor([[4.0]])}
    out = fedavg([s1, s2], [1, 3])  # weights 1/4, 3/4
    assert torch.allclose(out["w"], torch.tensor([2.5, 5.0]))
    assert torch.allclose(out["v"], torch.tensor([[3.0]]))
    s3 = {"w": torch.tensor([-2.0, 0.0]), "v": torch.tensor([[1.0]])}
    out = fedavg([s1, s2, s3], [2, 2, 4])  # (2·1 + 2·3 + 4·(-2)) / 8 = 0 ; (4 + 12 + 0) / 8 = 2
    assert torch.allclose(out["w"], torch.tensor([0.0, 2.0]))
    assert torch.allclose(out["v"], torch.tensor([[1.5]]))  # (2·0 + 2·4 + 4·1) / 8
    # equal weights -> plain mean; a zero weight drops a client
    assert torch.allclose(fedavg([s1, s2], [5, 5])["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(fedavg([s1, s2], [0, 7])["w"], s2["w"])


def test_fedavg_errors():
    s = {"w": torch.ones(2)}
    with pytest.raises(ConfigError, match="at least one"):
        fedavg([], [])
    with pytest.raises(ConfigError, match="2 states but 1 weights"):
        fedavg([s, s], [1])
    with pytest.raises(ConfigError, match="non-negative"):
        fedavg([s, s], [1, -1])
    with pytest.raises(ConfigError, match="non-negative"):
        fedavg([s, s], [0, 0])
    with pytest.raises(ConfigError, match="different keys"):
        fedavg([s, {"x": torch.ones(2)}], [1, 1])


def test_federated_server_aggregates_uploads():
    fs = FederatedServer({"w": torch.zeros(3)})
    with pytest.raises(ConfigError, match="no adapter upload"):
        fs.aggregate()
    fs.receive(AdapterMessage(0, {"w": torch.tensor([1.0, 1.0, 1.0])}, num_samples=10, precision="fp32",
                              payload_bits=96))
    fs.receive(AdapterMessage(1, {"w": torch.tensor([4.0, 0.0, -2.0])}, num_samples=30, precision="fp32",
                              payload_bits=96))
    msg = fs.aggregate()
    assert torch.allclose(msg.state["w"], torch.tensor([3.25, 0.25, -1.25]))  # (10·x0 + 30·x1) / 40
    assert msg.round == 1 and msg.payload_bits == 96 and msg.contributors == [0, 1]
    assert fs.pending_uploads == []
    with pytest.raises(ConfigError, match="keys"):
        fs.receive(AdapterMessage(2, {"x": torch.zeros(3)}, num_samples=1, precision="fp32", payload_bits=96))


def test_a_round_is_fedavg_of_the_real_client_and_server_adapters():
    n = [1, 2, 5]
    system = SplitFedSystem(load_model("tiny-llama"), SplitFedConfig(split=2, rank=2, server_mode="v1", learning_rate=0.05),
                            num_clients=3, num_samples=n)
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        for _ in range(2):
            system.iteration(k, learnable_batch(g, 2, 8))
    client_states = [{k: v.detach().clone() for k, v in c.state.items()} for c in system.clients]
    server_states = [{k: v.detach().clone() for k, v in system.main_server.states[i].items()} for i in range(3)]
    msg = system.finish_round()
    for key in client_states[0]:
        expect = sum(n[i] * client_states[i][key] for i in range(3)) / sum(n)
        assert torch.allclose(msg.state[key], expect, atol=1e-7)
        for c in system.clients:  # broadcast received
            assert torch.allclose(c.state[key], expect, atol=1e-7)
    for key in server_states[0]:
        expect = sum(n[i] * server_states[i][key] for i in range(3)) / sum(n)
        for i in range(3):
            assert torch.allclose(system.main_server.states[i][key], expect, atol=1e-7)
        assert torch.allclose(system.global_server_state()[key], expect, atol=1e-7)
