"""The in-process round driver: R global rounds of split-federated LoRA fine-tuning (spec §1).

Round t: every client runs E local iterations (forward -> MS step -> backward), uploads its adapter, the FS
aggregates (FedAvg) and broadcasts, the MS averages its v1 copies, and the global model is evaluated on the
global validation set (through the training wire format when ``eval_through_wire``) and, when
``eval_per_client``, on each client's own held-out sequences. Clients run one after the other in this process (``schedule``); the discrete-event
engine interleaves the same phase calls in simulated time instead.

Deterministic from ``seed``: LoRA initialisation, the data partition and batch order, and LoRA dropout all
derive from it, and the phase order is fixed by ``schedule``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import torch

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.defences import check_noise_sigma
from fsllm_sim.training.device import resolve_compute
from fsllm_sim.training.evaluation import evaluate_clients
from fsllm_sim.training.mixed_split import check_splits
from fsllm_sim.training.models import LoadedModel, load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem

SCHEDULES = ("round_robin", "sequential")
TOKENIZERS = ("auto", "model", "bpe", "smollm2")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a federated training run needs (model, data, LoRA, protocol, optimiser, wire)."""

    model: str = "smollm2-135m"
    tokenizer: str = "auto"  # auto: the model's own; tiny models: a 512-token BPE trained on the data source
    bpe_vocab_size: int = 512
    # data (fsllm_sim.training.data.build_federated_data)
    data_source: str = "shakespeare"
    data_format: str = "auto"
    data_mode: str = "pack"
    partition: str = "by_play"
    dirichlet_alpha: float = 0.5
    validation_fraction: float = 0.1
    global_validation_fraction: float = 0.05
    max_tokens_per_client: int | None = None
    num_clients: int = 8
    batch_size: int = 4  # b
    seq_len: int = 128  # L
    # protocol
    rounds: int = 10  # R
    local_iterations: int = 5  # E
    schedule: str = "round_robin"  # round_robin: iteration e of every client, then e+1; sequential: client by client
    split: int | None = None  # ℓ; None -> J // 2
    splits: tuple[int, ...] | None = None  # per-client ℓ_k, num_clients of them (overrides split); None: all at split
    rank: int = 8
    lora_alpha: float | None = None  # absolute α; None -> lora_alpha_per_rank · r
    lora_alpha_per_rank: float = 2.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None
    server_mode: str = "v1"
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    activation_precision: str = "fp16"
    activation_noise_sigma: float = 0.0  # defence: Gaussian noise on the sent activations, σ x each token's rms
    gradient_precision: str | None = None
    adapter_precision: str = "fp32"
    reset_optimizer_each_round: bool = False
    lora_scaling: str = "standard"  # standard: alpha / r; rslora: alpha / sqrt(r)
    lr_schedule: str = "constant"  # constant, cosine or linear over schedule_total_steps local steps
    warmup_steps: int = 0
    grad_clip_norm: float | None = None
    aggregation: str = "fedavg"  # fedavg (A and B separately) or product (exact average of B A, SVD to rank r)
    device: str = "cpu"  # cpu, cuda, cuda:N or auto (fsllm_sim.training.device)
    dtype: str = "float32"  # compute dtype: float32, or bfloat16 / float16 under autocast
    eval_through_wire: bool = False  # validation activations through the training wire format
    eval_per_client: bool = False  # also each client's loss on its own held-out data
    # evaluation
    eval_batch_size: int = 8
    max_eval_batches: int | None = None  # None: the whole global validation set
    seed: int = 0

    def system_config(self) -> SplitFedConfig:
        names = {f.name for f in fields(SplitFedConfig)}
        return SplitFedConfig(**{k: v for k, v in asdict(self).items() if k in names},
                              schedule_total_steps=self.rounds * self.local_iterations)

    def validate(self) -> TrainingConfig:
        for name in ("rounds", "local_iterations", "num_clients", "batch_size", "seq_len", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}={v!r} is invalid; allowed: an integer >= 1")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not supported; allowed: {', '.join(SCHEDULES)}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer={self.tokenizer!r} is not supported; allowed: {', '.join(TOKENIZERS)}")
        resolve_compute(self.device, self.dtype)  # an unknown or absent device: one line, before any loading
        check_noise_sigma(self.activation_noise_sigma, "activation_noise_sigma")
        if self.splits is not None:  # the bound J-1 needs the model: the system checks it when it is built
            check_splits(self.splits, self.num_clients)
        if self.max_eval_batches is not None and self.max_eval_batches < 1:
            raise ConfigError(f"max_eval_batches={self.max_eval_batches!r} is invalid; allowed: None or >= 1")
        return self


@dataclass
class RoundLog:
    round: int
    train_loss: float  # mean training loss of the round's iterations (all clients)
    val_loss: float  # global model after aggregation
    val_perplexity: float
    wall_s: float  # real seconds this round took in this process
    iterations: int
    activation_bits: int  # uplink payload of the round (Σ S_a), not counting side bits
    side_bits: int
    gradient_bits: int
    adapter_upload_bits: int  # Σ S_c
    broadcast_bits: int
    client_train_loss: list[float] = field(default_factory=list)
    client_val_loss: list[float] = field(default_factory=list)  # global model on each client's held-out data


@dataclass
class TrainingResult:
    model: str
    config: dict
    data_summary: dict
    initial_val_loss: float
    initial_val_perplexity: float
    rounds: list[RoundLog]
    wall_s: float
    initial_client_val_loss: list[float] = field(default_factory=list)

    @property
    def val_losses(self) -> list[float]:
        """Validation loss before training (index 0) and after each round (index t)."""
        return [self.initial_val_loss] + [r.val_loss for r in self.rounds]

    @property
    def train_losses(self) -> list[float]:
        return [r.train_loss for r in self.rounds]

    def to_dict(self) -> dict:
        return {
            "model": self.model, "config": self.config, "data_summary": self.data_summary,
            "initial_val_loss": self.initial_val_loss, "initial_val_perplexity": self.initial_val_perplexity,
            "initial_client_val_loss": self.initial_client_val_loss,
            "val_losses": self.val_losses, "train_losses": self.train_losses,
            "rounds": [asdict(r) for r in self.rounds], "wall_s": self.wall_s,
        }


# --------------------------------------------------------------------------------------------- setup


def prepare_model_and_data(config: TrainingConfig, *, model: LoadedModel | None = None, cache=None):
    """Load the model (and its tokenizer, or a BPE for tiny models) and build the federated data."""
    from fsllm_sim.training.data import build_federated_data, load_documents, train_bpe_tokenizer

    config.validate()
    tiny = config.model.startswith("tiny-")
    if model is not None:
        tok = model.tokenizer
        if tok is None:
            raise ConfigError(f"model {model.name!r} was loaded without a tokenizer; load it with "
                              f"load_model(..., tokenizer=...) or pass data=")
    elif config.tokenizer in ("bpe",) or (config.tokenizer == "auto" and tiny):
        if not tiny:
            raise ConfigError(f"tokenizer='bpe' is only for the tiny models; model {config.model!r} has its own")
        # the BPE vocabulary is learnt from the whole source (held-out text included): an unsupervised choice
        # of sub-words, identical for every run of a calibration, so it cannot favour one rank over another
        docs, _ = load_documents(config.data_source, config.data_format)
        tok = train_bpe_tokenizer([d.text for d in docs], vocab_size=config.bpe_vocab_size)
        model = load_model(config.model, tokenizer=tok, seed=config.seed, cache=cache)
    elif config.tokenizer == "smollm2":
        from fsllm_sim.training.models import load_smollm2_tokenizer

        tok = load_smollm2_tokenizer(cache)
        model = load_model(config.model, tokenizer=tok, seed=config.seed, cache=cache)
        if len(tok) > model.vocab_size:
            raise ConfigError(f"tokenizer='smollm2' has {len(tok)} tokens but {config.model!r} has a vocabulary "
                              f"of {model.vocab_size}")
    else:
        model = load_model(config.model, seed=config.seed, cache=cache)
        tok = model.tokenizer
        if tok is None:
            raise ConfigError(f"model {config.model!r} has no tokenizer; set tokenizer to 'bpe' or 'smollm2'")
    data = build_federated_data(
        config.data_source, tokenizer=tok, num_clients=config.num_clients, seq_len=config.seq_len,
        seed=config.seed, partition=config.partition, dirichlet_alpha=config.dirichlet_alpha,
        validation_fraction=config.validation_fraction,
        global_validation_fraction=config.global_validation_fraction, format=config.data_format,
        mode=config.data_mode, max_context=model.max_positions, max_tokens_per_client=config.max_tokens_per_client,
    )
    return model, data


def validation_set(data):
    """The global validation set; DataError when it is empty."""
    val = data.global_validation
    n = val.num_sequences if hasattr(val, "num_sequences") else int(val["input_ids"].shape[0])
    if n == 0:
        raise DataError("the global validation set is empty; set global_validation_fraction > 0")
    return val


def _data_summary(data) -> dict:
    try:
        s = data.summary()
        return {k: v for k, v in s.items() if k != "clients"}
    except Exception:  # noqa: BLE001 - a duck-typed data object without summary()
        return {"num_clients": len(data.clients)}


# --------------------------------------------------------------------------------------------- the loop


def run_federated_training(config: TrainingConfig, *, model: LoadedModel | None = None, data=None,
                           progress: bool = True, on_round_end: Callable[[RoundLog], None] | None = None,
                           stop_after: Callable[[RoundLog], bool] | None = None, cache=None) -> TrainingResult:
    """Run ``config.rounds`` rounds and return the per-round losses (validation loss of the global model).

    ``stop_after(log)`` returning true ends the run after that round (a calibration stops at its target); the
    rounds run are exactly those of a full run's first rounds, since the learning-rate schedule is set by
    ``config.rounds`` whether or not the run stops early.

    ``model`` / ``data`` may be given (e.g. a shared tiny model in tests); otherwise both are built from the
    config. The model object is consumed: LoRA is injected into it.
    """
    from tqdm.auto import tqdm

    config.validate()
    t_start = time.perf_counter()
    if data is None:
        model, data = prepare_model_and_data(config, model=model, cache=cache)
    elif model is None:
        model = load_model(config.model, seed=config.seed, cache=cache)
    val = validation_set(data)
    torch.manual_seed(config.seed)  # LoRA dropout stream
    system = SplitFedSystem(model, config.system_config(), data=data, batch_size=config.batch_size)
    def evaluate():
        ev = system.evaluate(val, batch_size=config.eval_batch_size, max_batches=config.max_eval_batches,
                             through_wire=config.eval_through_wire)
        per_client = (evaluate_clients(system, data.clients, batch_size=config.eval_batch_size,
                                       max_batches=config.max_eval_batches, through_wire=config.eval_through_wire)
                      if config.eval_per_client else [])
        return ev, per_client

    ev0, client_ev0 = evaluate()
    K, E = system.num_clients, config.local_iterations
    if config.schedule == "round_robin":
        order = [k for _ in range(E) for k in range(K)]
    else:
        order = [k for k in range(K) for _ in range(E)]

    logs: list[RoundLog] = []
    shown_split = ",".join(map(str, system.splits)) if system.mixed_splits else system.split
    bar = tqdm(total=config.rounds * len(order), disable=not progress, desc=f"{model.name} ℓ={shown_split} "
               f"r={system.rank}", unit="it", leave=False)
    bar.set_postfix(val_loss=f"{ev0.loss:.4f}")
    try:
        for t in range(1, config.rounds + 1):
            t0 = time.perf_counter()
            losses: dict[int, list[float]] = {k: [] for k in range(K)}
            bits = {"a": 0, "s": 0, "g": 0}
            for k in order:
                up, grad, loss = system.iteration_messages(k)
                if not math.isfinite(loss):
                    raise ConfigError(f"training diverged (loss={loss}) at round {t}, client {k}; lower learning_rate="
                                      f"{config.learning_rate}")
                losses[k].append(loss)
                bits["a"] += up.payload_bits
                bits["s"] += up.side_bits
                bits["g"] += grad.payload_bits
                bar.update(1)
            upload_bits = sum(c.adapter_bits() for c in system.clients)
            bcast = system.finish_round()
            ev, client_ev = evaluate()
            all_losses = [x for v in losses.values() for x in v]
            log = RoundLog(
                round=t, train_loss=sum(all_losses) / len(all_losses), val_loss=ev.loss,
                val_perplexity=ev.perplexity, wall_s=time.perf_counter() - t0, iterations=len(all_losses),
                activation_bits=bits["a"], side_bits=bits["s"], gradient_bits=bits["g"],
                adapter_upload_bits=upload_bits,
                broadcast_bits=bcast.payload_bits,
                client_train_loss=[sum(v) / len(v) for _, v in sorted(losses.items())],
                client_val_loss=client_ev,
            )
            logs.append(log)
            bar.set_postfix(val_loss=f"{ev.loss:.4f}")
            if on_round_end is not None:
                on_round_end(log)
            if stop_after is not None and stop_after(log):
                break
    finally:
        bar.close()
    cfg = asdict(config)
    cfg["split"] = system.split  # per-client splits: min ℓ_k (and every ℓ_k under "splits")
    if config.splits is not None:
        cfg["splits"] = list(system.splits)
    return TrainingResult(model=model.name, config=cfg, data_summary=_data_summary(data),
                          initial_val_loss=ev0.loss, initial_val_perplexity=ev0.perplexity, rounds=logs,
                          wall_s=time.perf_counter() - t_start, initial_client_val_loss=client_ev0)
