"""What happens in each phase: analytic costs, or the real PyTorch work of the split model.

Both backends answer the engine's few questions (payload bits, compute FLOPs, how long a client's
compute takes) behind one small interface; the engine never imports torch.

:class:`AnalyticBackend` takes FLOPs and payloads from the scenario's profile and runs nothing.

:class:`TorchBackend` drives :class:`fsllm_sim.training.SplitFedSystem`. A client's forward depends
on nothing that happens between its simulated forward and its server service (its own adapter only
changes at its own backward), so the whole real iteration (client forward, main-server step, client
backward) runs when the request enters service. The results are those of the simulated order (in v2
the shared server adapter is updated in service order) while only one iteration's autograd graph is
ever held, whatever K.

``timing: flops`` takes every duration from the counted FLOPs; ``timing: measured`` times each real op
on this host and scales it by host speed / device speed. The forward's duration is needed at the
simulated forward, before the iteration runs: measured timing therefore runs the forward once more
there on the same batch and discards its graph (host time only; the simulated times and the results
are unaffected).

Per-client splits (an allocation's ``splits``, protocol sfl only): the system is built with
``SplitFedConfig.splits`` (client k of the engine is training client k), client k uploads S_c(ℓ_k) counted from
its real tensors (``adapter_bits_of(k)``), the broadcast carries the largest adapter (the union of the clients'
blocks), aggregation is by global block index over the round's participants (``SplitFedSystem.finish_round``),
and ``timing: flops`` takes client k's compute from the counted FLOPs of its own split
(``problem.client_costs``). All splits equal is the single-split run, output for output. sl and fl refuse them
in one line.

Under ``protocol: fl`` it drives :class:`fsllm_sim.training.federated_lora.FederatedLoraSystem` instead: the
whole model's forward and loss run at the simulated forward, its backward and update at the simulated backward,
and FedAvg over the round's participants at the round's end.

Under ``protocol: sl`` the engine also calls :meth:`AnalyticBackend.begin_turn` / ``end_turn`` around each
client's turn: the real backend hands the client adapter on (client k uploads it at the adapter precision,
the next client loads what arrived), trains one server adapter in turn order (SplitFed-V2's shared adapter:
``training.server_mode`` does not apply) and, at the round's end, makes the last client's adapter the global
one for evaluation (no FedAvg).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..errors import ConfigError, DataError


class AnalyticBackend:
    """No PyTorch: costs of the (split, rank) in force from the profile; with per-client splits
    (``configure(split, rank, splits)``) client k's costs are those of its own split ``splits[k]``."""

    real = False

    def __init__(self, problem):
        self.problem = problem
        self.costs: dict = {}
        self.splits = None  # per-client split points in force (None: every client at the common split)
        self.initial_val_loss = math.nan  # no model, no loss
        self.host_flops_per_s = None
        self.op_wall_s = 0.0  # host seconds inside PyTorch ops (the engine's overhead is the rest)
        self.setup_wall_s = 0.0  # host seconds preparing the model and data

    def configure(self, split: int, rank: int, splits=None) -> None:
        """Costs of (split, rank) for every client, or, with ``splits``, of (splits[k], rank) for client k (lists
        of floats: problem.client_costs); the broadcast then carries the largest adapter."""
        if splits is None:
            self.splits = None
            self.costs = self.problem.costs(split, rank)
            return
        self.splits = [int(s) for s in splits]
        self.costs = {name: np.asarray(value, dtype=float).tolist()
                      for name, value in self.problem.client_costs(self.splits, rank).items()}

    def _cost(self, name: str, k):
        value = self.costs[name]
        return value if self.splits is None else value[k]

    # payloads [bits] (k: the client; None: the common value, only without per-client splits)
    def activation_bits(self, k: int | None = None) -> float:
        return self._cost("activation_bits", k)

    def gradient_bits(self, k: int | None = None) -> float:
        return self._cost("activation_bits", k)  # S_g = S_a: the gradient has the activation's shape

    def adapter_bits(self, k: int | None = None) -> float:
        return self._cost("adapter_bits", k)

    def broadcast_bits(self) -> float:
        """The global adapter the federated server broadcasts: with per-client splits, the union of the clients'
        blocks, as large as the largest client adapter."""
        return self.costs["adapter_bits"] if self.splits is None else max(self.costs["adapter_bits"])

    # compute: (FLOPs, duration on client k's device at its speed in this round)
    def forward(self, k: int, device_flops_per_s: float) -> tuple[float, float]:
        f = self.costs["client_forward_flops"] if self.splits is None else self.costs["client_forward_flops"][k]
        return f, f / device_flops_per_s

    def server_work(self, k: int) -> float:
        """Called when the request enters service; returns its work [FLOP]."""
        return self.costs["server_flops"] if self.splits is None else self.costs["server_flops"][k]

    def backward(self, k: int, device_flops_per_s: float) -> tuple[float, float]:
        f = self.costs["client_backward_flops"] if self.splits is None else self.costs["client_backward_flops"][k]
        return f, f / device_flops_per_s

    def begin_turn(self, k: int) -> None:
        """sl: client k's turn starts (the handed-on adapter has arrived)."""

    def end_turn(self, k: int) -> None:
        """sl: client k's turn ends (its adapter has been uploaded for the next client)."""

    def finish_round(self, round_index: int, participants=None) -> dict:
        """Round end; ``participants`` (problem indices) are the clients aggregated (None: all)."""
        return {}


class TorchBackend(AnalyticBackend):
    """Real split federated LoRA training in simulated-time order (see the module docstring)."""

    real = True

    def __init__(self, problem, scenario, *, timing: str = "flops", host_flops_per_s: float | None = None,
                 progress: bool = True, echo=print):
        super().__init__(problem)
        self.protocol = problem.protocol
        # fl: the engine's client k is the problem's k-th client, scenario client client_ids[k] (devices without
        # the memory for the whole model take no part), whose data it trains on
        self._data_client = [int(c) for c in problem.client_ids]
        self._handed = None  # sl: the adapter message on its way to the next client
        self._last_upload = None  # sl: the last client's upload of the round
        self.scenario = scenario
        self.timing = timing
        self.host_flops_per_s = host_flops_per_s
        self.progress = progress
        self.echo = echo
        self.system = None
        self._train_splits = None  # the per-client splits the system was built with (None: one split)
        self.validation = None
        self._batch: dict = {}
        self._backward_s: dict = {}
        self._losses: list = []

    def configure(self, split: int, rank: int, splits=None) -> None:
        """Build the real system at (split, rank) on the first call; with ``splits`` (sfl only), client k trains at
        its own split splits[k] (``SplitFedConfig.splits``; all equal: the single-split system, exactly). Later
        calls must name the same split, rank and splits (a real run cannot change them)."""
        if splits is not None:
            splits = self._check_per_client(splits)
            super().configure(split, rank, splits)
        else:
            super().configure(split, rank)
        if self.system is not None:
            if splits is not None or self._train_splits is not None:
                if (self._train_splits, self.system.rank) != (splits, rank):
                    before = "one split" if self._train_splits is None else f"splits {list(self._train_splits)}"
                    after = "one split" if splits is None else f"splits {list(splits)}"
                    raise ConfigError(f"real training cannot change its per-client splits or rank mid-run "
                                      f"({before}, rank {self.system.rank}) -> ({after}, rank {rank})")
                return
            if (self.system.split, self.system.rank) != (split, rank):
                raise ConfigError(f"real training cannot change split/rank mid-run ({self.system.split}, "
                                  f"{self.system.rank}) -> ({split}, {rank})")
            return
        import torch

        from ..training.federated_training import prepare_model_and_data, validation_set
        from ..training.from_scenario import training_config
        from ..training.system import SplitFedSystem

        setup_start = time.perf_counter()
        cfg = training_config(self.scenario, rank=rank, split=split)
        if splits is not None:  # client k (the engine's index, sfl: the training client k) at splits[k]
            cfg = dataclasses.replace(cfg, splits=splits)
        self._train_splits = splits
        if self.progress:
            shown = f"split {split}" if splits is None else f"splits {','.join(map(str, splits))}"
            self.echo(f"preparing real training: {cfg.model}, {shown}, rank {rank}, {cfg.num_clients} clients")
        model, data = prepare_model_and_data(cfg)
        if self.timing == "measured" and self.host_flops_per_s is None:
            from ..training.device import resolve_compute
            from ..training.host_speed import host_speed_from_profile, measure_host_flops_per_s

            profile = self.scenario.simulation.host_profile
            if profile:
                self.host_flops_per_s, notes = host_speed_from_profile(profile, cfg)
                for line in notes:
                    self.echo(f"warning: {line}")
            else:
                self.host_flops_per_s = measure_host_flops_per_s(compute=resolve_compute(cfg.device, cfg.dtype))
        self.validation = validation_set(data)
        self.data = data  # per-client held-out sequences for _evaluate
        torch.manual_seed(cfg.seed)  # LoRA dropout stream, as the in-process driver does
        system_config = cfg.system_config()
        if self.protocol == "sl":  # one server adapter, trained in turn order
            system_config = dataclasses.replace(system_config, server_mode="v2")
        if self.protocol == "fl":
            from ..training.federated_lora import FederatedLoraSystem

            self.system = FederatedLoraSystem(model, system_config, data=data, batch_size=cfg.batch_size)
        else:
            self.system = SplitFedSystem(model, system_config, data=data, batch_size=cfg.batch_size)
        self.config = cfg
        self.initial_val_loss = self._evaluate()
        # model loading, data and the initial evaluation happen once, before the rounds: not engine overhead
        self.setup_wall_s = time.perf_counter() - setup_start
        self.op_wall_s = 0.0

    def _check_per_client(self, splits) -> tuple[int, ...]:
        """Per-client splits as the training client ids' tuple; sl and fl refuse them in one line."""
        if self.protocol != "sfl":
            why = ("the whole model trains on the device" if self.protocol == "fl" else
                   "the clients hand one client adapter on in turn, so they share one split")
            raise ConfigError(f"split.per_client: real training with per-client splits needs protocol sfl "
                              f"(protocol is {self.protocol}: {why}); allowed here: one split for every client")
        out = tuple(int(s) for s in splits)
        if len(out) != len(self._data_client):
            raise ConfigError(f"per-client splits: {len(out)} given for {len(self._data_client)} clients; allowed: "
                              f"one split per client")
        return out

    def _timed(self, fn, *args):
        compute = self.system.compute
        compute.synchronize()  # CUDA: the op's kernels, not just their launches, inside the interval
        t0 = time.perf_counter()
        out = fn(*args)
        compute.synchronize()
        dt = time.perf_counter() - t0
        self.op_wall_s += dt
        return out, dt

    def _evaluate(self) -> float:
        """Global validation loss; each client's loss on its own held-out data (``evaluation.per_client``,
        else []) goes to ``self.client_val_loss``. Both through the training wire when ``through_wire``."""
        from ..training.evaluation import evaluate_clients

        ev_cfg = self.scenario.evaluation
        through_wire = bool(getattr(ev_cfg, "through_wire", False))
        ev, _ = self._timed(lambda: self.system.evaluate(self.validation, batch_size=ev_cfg.batch_size,
                                                         max_batches=ev_cfg.max_batches, through_wire=through_wire))
        per_client: list[float] = []
        if getattr(ev_cfg, "per_client", True):
            per_client, _ = self._timed(lambda: evaluate_clients(
                self.system, self.data.clients, batch_size=ev_cfg.batch_size, max_batches=ev_cfg.max_batches,
                through_wire=through_wire))
        self.client_val_loss = per_client
        return float(ev.loss)

    def _scaled(self, wall_s: float, device_flops_per_s: float) -> float:
        return wall_s * self.host_flops_per_s / device_flops_per_s

    # payloads: the real messages' sizes (S_a and S_g do not depend on the split: the same for each k)
    def activation_bits(self, k: int | None = None) -> float:
        return float(self.system.activation_bits(self.config.batch_size, self.config.seq_len))

    def gradient_bits(self, k: int | None = None) -> float:
        return float(self.system.gradient_bits(self.config.batch_size, self.config.seq_len))

    def _mixed(self) -> bool:
        return bool(getattr(self.system, "mixed_splits", False))

    def adapter_bits(self, k: int | None = None) -> float:
        """S_c of client k's upload, from its real tensors; with different splits S_c(ℓ_k) (k required)."""
        if self._mixed():
            if k is None:
                raise ConfigError("with per-client splits the adapter size depends on the client; ask "
                                  "adapter_bits(k) or broadcast_bits()")
            return float(self.system.adapter_bits_of(k))
        return float(self.system.adapter_bits())

    def broadcast_bits(self) -> float:
        """The global adapter's broadcast; with different splits the union of the clients' blocks (blocks below
        the largest ℓ_k), as large as the largest client adapter (the analytic backend's rule)."""
        if self._mixed():
            return max(float(self.system.adapter_bits_of(k)) for k in range(self.system.num_clients))
        return self.adapter_bits()

    def forward(self, k: int, device_flops_per_s: float) -> tuple[float, float]:
        if self.protocol == "fl":  # the whole model on the device: the real forward and loss run here
            flops, duration = super().forward(k, device_flops_per_s)
            loss, wall = self._timed(self.system.clients[self._data_client[k]].forward)
            if not math.isfinite(loss):
                raise DataError(f"training diverged (loss={loss}) at client {self._data_client[k]}; lower "
                                f"training.learning_rate")
            self._losses.append(loss)
            return flops, (self._scaled(wall, device_flops_per_s) if self.timing == "measured" else duration)
        client = self.system.clients[k]
        self._batch[k] = client.next_batch()
        flops, duration = super().forward(k, device_flops_per_s)
        if self.timing == "measured":
            _, wall = self._timed(client.forward, self._batch[k])
            client.cancel_pending()
            duration = self._scaled(wall, device_flops_per_s)
        return flops, duration

    def server_work(self, k: int) -> float:
        client = self.system.clients[k]
        msg, _ = self._timed(client.forward, self._batch.pop(k))
        (grad, loss), server_wall = self._timed(self.system.main_server.step, msg)
        _, backward_wall = self._timed(client.backward, grad)
        if not math.isfinite(loss):
            raise DataError(f"training diverged (loss={loss}) at client {k}; lower training.learning_rate")
        self._losses.append(loss)
        self._backward_s[k] = backward_wall
        if self.timing == "measured":
            return server_wall * self.host_flops_per_s
        return super().server_work(k)

    def backward(self, k: int, device_flops_per_s: float) -> tuple[float, float]:
        flops, duration = super().backward(k, device_flops_per_s)
        if self.protocol == "fl":
            _, wall = self._timed(self.system.clients[self._data_client[k]].backward)
            return flops, (self._scaled(wall, device_flops_per_s) if self.timing == "measured" else duration)
        wall = self._backward_s.pop(k)
        if self.timing == "measured":
            duration = self._scaled(wall, device_flops_per_s)
        return flops, duration

    def begin_turn(self, k: int) -> None:
        if self._handed is not None:
            self._timed(self.system.clients[k].receive_broadcast, self._handed)

    def end_turn(self, k: int) -> None:
        from ..training.messages import BroadcastMessage

        up, _ = self._timed(self.system.clients[k].adapter_upload)
        self._last_upload = up
        self._handed = BroadcastMessage(round=self.system.round, state=up.state, precision=up.precision,
                                        payload_bits=up.payload_bits, contributors=[k])

    def finish_round(self, round_index: int, participants=None) -> dict:
        """FedAvg over ``participants`` only (their real adapters, weights n_k renormalised over them); every
        other client's local updates of the round are discarded: the broadcast overwrites its adapter. In v1
        the server copies are averaged over the participants the same way; in v2 the shared server adapter
        keeps every update already made, those served for a client that later dropped included (docs/dynamics.md)."""
        if self.protocol == "sl":
            # no FedAvg: the adapter the last client handed on is the round's client adapter
            self.system.fed_server.receive(self._last_upload)
            self._timed(self.system.aggregate)
        elif self.protocol == "fl":
            ids = range(len(self._data_client)) if participants is None else participants
            self._timed(self.system.finish_round, [self._data_client[k] for k in ids])
        elif participants is None:
            self._timed(self.system.finish_round)
        else:
            self._timed(self.system.finish_round, list(participants))
        losses, self._losses = self._losses, []
        val_loss = self._evaluate()
        return {"train_loss": sum(losses) / len(losses) if losses else math.nan, "val_loss": val_loss,
                "client_val_loss": list(self.client_val_loss)}
