"""Convergence model: global rounds N(r) to reach a target validation loss at LoRA rank r.

The parameters are fitted from the project's own training runs (``fsllm-sim calibrate``); the
fit's JSON carries its provenance, and ``source`` says which file a model came from.

What transfers is the number of training tokens to the target, T(r) = a + b r^(-c), not the
number of rounds: a round trains K E b L tokens, so a fit measured at K = 4, b = 2, L = 64, E = 2
(1,024 tokens per round) says little about rounds at K = 8, b = 4, L = 128, E = 5 (20,480). A
calibration file is read as tokens (its own K E b L converts its rounds) and the scenario's
N(r) = T(r) / (K E b L of the scenario), to first order (equal tokens to the target whatever the
batch shape).

Two measured corrections multiply T(r) when the calibration file carries them (``description`` lists
the factors in force):

* ``precision_penalty`` (written by ``python -m fsllm_sim.training.precision_check``): for each other wire
  precision, the factor T_precision(r) / T_own(r) measured at the same absolute target (geometric mean over
  ranks, 95 % bootstrap interval over seeds). A scenario whose ``training.activation_precision`` has a
  measured penalty gets T(r) times that factor, so an int8 wire is not free in the objective N(r) T_round.
* ``noise_penalty`` (written by the same check from a calibration that differs only in
  ``training.activation_noise_sigma``): for each measured sigma, the factor T_noisy(r) / T_own(r), applied to a
  scenario with that noise; the defence's cost to learning, as the wire's.
* ``batch_scaling`` (written by ``python -m fsllm_sim.training.transfer_check A B --into FILE``): T(r)
  scales with (b L / (b L of the calibration))^beta, tokens per client step relative to the calibration's,
  with beta measured from two calibrations that differ in b L. Outside the measured range of b L by more
  than :data:`BATCH_EXTRAPOLATION_FACTOR` the correction is an extrapolation and says so in one line.

Some differences the token model does not cover at all: another model, a wire precision with no measured
penalty, activation noise of a sigma with no measured penalty (a file that does not record
``activation_noise_sigma`` was measured without noise), LoRA scaling, a learning rate outside the calibration's (or outside its grid, when it chose a
best learning rate per rank from a grid) or another partition. Each is reported by
:meth:`ConvergenceModel.regime_warnings` as one line, so no number is used silently out of the regime it
was measured in. With ``convergence.calibration: null`` the scenario's own a, b, c are N(r) in rounds, as
given, with no correction.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .delay import convergence_rounds
from .errors import ConfigError


# Settings of a calibration the token model does not carry over: (label, scenario value, calibration key).
# The activation precision is checked apart (a measured penalty covers it), and so is a learning-rate grid.
REGIME_FIELDS = (
    ("model", lambda s: s.model.name, "model"),
    ("LoRA scaling", lambda s: s.lora.scaling, "lora_scaling"),
    ("LoRA alpha per rank", lambda s: float(s.lora.alpha_per_rank), "lora_alpha_per_rank"),
    ("learning rate", lambda s: float(s.training.learning_rate), "learning_rate"),
    ("partition", lambda s: s.data.partition, "partition"),
)

# A scenario's tokens per client step b L may lie this factor outside the range the batch exponent was
# measured over before the correction is called an extrapolation (one line; the factor is still applied).
BATCH_EXTRAPOLATION_FACTOR = 1.5


def tokens_per_round(num_clients: int, local_iterations: int, batch_size: int, seq_len: int) -> int:
    """Training tokens of one global round: K E b L."""
    return int(num_clients) * int(local_iterations) * int(batch_size) * int(seq_len)


def scenario_tokens_per_round(scenario) -> int:
    tr = scenario.training
    return tokens_per_round(scenario.clients.count, tr.local_iterations, tr.batch_size, tr.seq_len)


def scenario_tokens_per_step(scenario) -> int:
    """Training tokens of one client step: b L."""
    return int(scenario.training.batch_size) * int(scenario.training.seq_len)


@dataclass(frozen=True)
class ConvergenceModel:
    """N(r) = (a + b r^(-c)) x ``factor`` in rounds (``unit: rounds``), or T(r) = (a + b r^(-c)) x ``factor``
    training tokens divided by ``tokens_per_round`` (``unit: tokens``). ``factor`` = ``precision_factor`` x
    ``batch_factor`` x ``noise_factor``: the measured penalty of the scenario's wire precision, the tokens-per-step
    correction and the measured penalty of its activation noise (each 1 unless the calibration file carries it;
    see the module doc; ``noise_penalties`` maps each measured sigma to its factor). ``measured_at``
    records the calibration's settings, ``penalties`` the measured penalty of each other precision
    (``penalised_precision`` is the one applied), ``batch_scaling`` the exponent, its measured range and the
    tokens per client step of the calibration and of the scenario."""

    a: float
    b: float
    c: float
    source: str = "scenario"
    unit: str = "rounds"
    tokens_per_round: float | None = None
    measured_at: dict = field(default_factory=dict, compare=False)
    precision_factor: float = 1.0
    batch_factor: float = 1.0
    penalties: dict = field(default_factory=dict, compare=False)
    penalised_precision: str | None = None
    batch_scaling: dict | None = field(default=None, compare=False)
    noise_factor: float = 1.0
    noise_penalties: dict = field(default_factory=dict, compare=False)
    penalised_noise: float | None = None
    noise_penalty_bound: str | None = None  # "lower": the runs with noise were censored, the factor is a bound

    def __post_init__(self):
        for name in ("a", "b", "c"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"convergence.{name}={value} must be a finite number >= 0")
        if self.a + self.b <= 0:
            raise ConfigError("convergence: a + b must be > 0 (N(1) would be zero rounds)")
        for name in ("precision_factor", "batch_factor", "noise_factor"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"convergence {name}={value} must be a finite number > 0")
        if self.unit not in ("rounds", "tokens"):
            raise ConfigError(f"convergence unit {self.unit!r} is not one of rounds, tokens")
        if self.unit == "tokens" and not (self.tokens_per_round and self.tokens_per_round > 0):
            raise ConfigError("convergence in tokens needs the scenario's tokens per round (K E b L > 0)")

    @property
    def factor(self) -> float:
        """What multiplies the fit a + b r^(-c): the precision penalty, the tokens-per-step correction and the
        noise penalty."""
        return float(self.precision_factor) * float(self.batch_factor) * float(self.noise_factor)

    @property
    def description(self) -> str:
        """One line: the fit, where it comes from and every factor applied to it."""
        what = "N(r)" if self.unit == "rounds" else "T(r)"
        unit = "rounds" if self.unit == "rounds" else "tokens"
        text = f"{what} = {self.a:.6g} + {self.b:.6g} r^-{self.c:.4g} {unit} from {self.source}"
        if self.precision_factor != 1.0:
            own = self.measured_at.get("activation_precision")
            text += (f", x {self.precision_factor:.4g} for the {self.penalised_precision} wire (measured "
                     f"penalty against {own})")
        if self.batch_factor != 1.0 and self.batch_scaling:
            bs = self.batch_scaling
            text += (f", x {self.batch_factor:.4g} for {bs['scenario']:g} tokens per client step (calibrated at "
                     f"{bs['calibration']:g}, exponent {bs['exponent']:.3g})")
        if self.noise_factor != 1.0:
            bound = " (a lower bound)" if self.noise_penalty_bound else ""
            text += (f", x {self.noise_factor:.4g}{bound} for activation noise of sigma {self.penalised_noise:g} "
                     f"(measured penalty)")
        if self.unit == "tokens":
            text += f"; N(r) = T(r) / {self.tokens_per_round:g} tokens per round"
        return text

    def rounds(self, rank):
        """N(r) for a rank or an array of ranks (a real number: expected rounds, not rounded).

        A token model is floored at one round: the adapters reach the federation (and the validation that
        decides the target) only at a round's end, so a target met within the tokens of one round still costs
        a whole round (:meth:`regime_warnings` says when the floor binds)."""
        rank_arr = np.asarray(rank, dtype=float)
        if np.any(rank_arr < 1):
            raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
        n = convergence_rounds(rank_arr, self.a, self.b, self.c) * self.factor
        return n if self.unit == "rounds" else np.maximum(n / self.tokens_per_round, MIN_ROUNDS)

    def tokens(self, rank):
        """T(r): training tokens to the target at the scenario's settings (the fit times ``factor``; a token
        model only)."""
        if self.unit != "tokens":
            raise ConfigError("this convergence model is in rounds; it has no token count")
        return convergence_rounds(np.asarray(rank, dtype=float), self.a, self.b, self.c) * self.factor

    def regime_warnings(self, scenario) -> list[str]:
        """One line per setting where the scenario leaves the regime the calibration was measured in."""
        out = []
        advice = "(calibrate at the scenario's settings: fsllm-sim calibrate)"
        for label, get, key in REGIME_FIELDS:
            if key not in self.measured_at:
                continue
            measured, wanted = self.measured_at[key], get(scenario)
            if measured != wanted:
                out.append(f"convergence: {self.source} was measured with {label} {measured!r}, the scenario uses "
                           f"{wanted!r}, which N(r) does not account for {advice}")
        sigma = float(scenario.training.activation_noise_sigma)
        own_sigma = float(self.measured_at.get("activation_noise_sigma") or 0.0)  # a file of before it: no noise
        if sigma != own_sigma and noise_penalty_key(self.noise_penalties, sigma) is None:
            measured = "without activation noise" if own_sigma == 0 else f"with activation noise sigma {own_sigma:g}"
            known = (f"; noise penalties are measured for sigma {', '.join(sorted(self.noise_penalties))} only"
                     if self.noise_penalties else "")
            added = f"adds noise of sigma {sigma:g}" if sigma > 0 else "adds no noise"
            out.append(f"convergence: {self.source} was measured {measured}, the scenario {added}, which N(r) "
                       f"does not account for{known} {advice}")
        if self.noise_factor != 1.0 and self.noise_penalty_bound:
            out.append(f"convergence: the noise penalty x {self.noise_factor:.4g} of {self.source} for sigma "
                       f"{self.penalised_noise:g} is a {self.noise_penalty_bound} bound (its runs with noise never "
                       f"reached the target), so N(r) is at least what is shown")
        own, wanted = self.measured_at.get("activation_precision"), scenario.training.activation_precision
        measured_penalties = sorted(self.penalties)
        if own is not None and wanted != own and wanted not in measured_penalties:
            known = (f"; penalties are measured for {', '.join(measured_penalties)} only"
                     if measured_penalties else "")
            out.append(f"convergence: {self.source} was measured with activation precision {own!r}, the scenario "
                       f"uses {wanted!r}, which N(r) does not account for{known} {advice}")
        grid = self.measured_at.get("learning_rates")
        lr = float(scenario.training.learning_rate)
        if "learning_rate" not in self.measured_at and grid and len(grid) > 1 \
                and not any(abs(lr - g) <= 1e-9 * max(abs(g), 1e-300) for g in grid):
            out.append(f"convergence: {self.source} used a per-rank best learning rate from the grid "
                       f"[{', '.join(f'{g:g}' for g in grid)}], the scenario uses {lr:g}, which is not in it and "
                       f"N(r) does not account for {advice}")
        elif "learning_rate" not in self.measured_at and grid and len(grid) > 1:
            # in the grid is not enough: N(r) was measured at the rate that won at each rank
            best = self.measured_at.get("best_learning_rates", {})
            ranks = sorted({int(r) for r in scenario.lora.ranks} | {int(scenario.lora.rank)})
            other = {r: best[r] for r in ranks if r in best and abs(best[r] - lr) > 1e-9 * max(abs(lr), 1e-300)}
            if other:
                chosen = ", ".join(f"{r_}: {v:g}" for r_, v in sorted(other.items()))
                out.append(f"convergence: {self.source} was measured at the best learning rate of each rank "
                           f"(rank: rate {chosen}), the scenario trains with {lr:g}, which N(r) does not account "
                           f"for {advice}")
        bs = self.batch_scaling
        if bs and self.unit == "tokens":
            lo, hi = bs["range"]
            step = float(scenario_tokens_per_step(scenario))
            if step > hi * BATCH_EXTRAPOLATION_FACTOR or step < lo / BATCH_EXTRAPOLATION_FACTOR:
                where = f"{step / hi:.3g}x above" if step > hi else f"{lo / step:.3g}x below"
                out.append(f"convergence: {self.source} measured the tokens-per-step exponent "
                           f"{bs['exponent']:.3g} between {lo:g} and {hi:g} tokens per client step; the "
                           f"scenario's {step:g} (b L) is {where} that range, so the factor "
                           f"{self.batch_factor:.3g} applied to N(r) is an extrapolation")
        span = self.measured_at.get("rank_range")
        ranks = sorted({int(r) for r in scenario.lora.ranks} | {int(scenario.lora.rank)})
        outside = [r for r in ranks if span and not span[0] <= r <= span[1]]
        if outside:
            out.append(f"convergence: {self.source} measured ranks {span[0]}..{span[1]}; N(r) at rank(s) "
                       f"{', '.join(map(str, outside))} is an extrapolation of the fit {advice}")
        if self.unit == "tokens":
            floored = [r for r in ranks if float(self.tokens(r)) < MIN_ROUNDS * self.tokens_per_round]
            if floored:
                out.append(f"convergence: at rank(s) {', '.join(map(str, floored))} {self.source} reaches its target "
                           f"within one round of the scenario ({self.tokens_per_round:g} tokens per round), so N(r) "
                           f"is floored at 1 round and does not rank them (calibrate to a lower target, "
                           f"calibration.target_rule, for a scenario with this many tokens per round)")
        return out


BUILTIN_CALIBRATION = "builtin"

MIN_ROUNDS = 1.0  # a token model's N(r) is at least one whole round


def builtin_calibration_path():
    """The calibration file shipped with the package (produced by a real run; see its provenance)."""
    return Path(__file__).parent / "data" / "calibration-smollm2-135m.json"


CALIBRATION_SCHEMA = "fsllm-sim/calibration/v1"  # N(r) in rounds at the calibration's own K E b L
CALIBRATION_SCHEMAS = (CALIBRATION_SCHEMA, "fsllm-sim/calibration/v2")  # v2: T(r) in tokens, multi-seed


MAX_CALIBRATION_BYTES = 64 * 1024 * 1024  # the shipped file is a few KiB; refuse larger files unread


def _fit_specs() -> dict:
    """fit key -> the Spec of the scenario field it stands for (``convergence.a/b/c``); the target value obeys
    ``calibration.target_val_loss``. Read from the schema, so a file and a scenario obey one range."""
    from .config.loader import field_spec
    from .config.schema import Scenario

    specs = {k: field_spec(Scenario, f"convergence.{k}") for k in ("a", "b", "c")}
    specs["target"] = field_spec(Scenario, "calibration.target_val_loss")
    return specs


def _read_calibration_text(p: Path, shown: str) -> str:
    try:
        size = p.stat().st_size
        raw = b""
        if size <= MAX_CALIBRATION_BYTES:
            with p.open("rb") as fh:
                raw = fh.read(MAX_CALIBRATION_BYTES + 1)
            size = max(size, len(raw))
    except FileNotFoundError:
        raise ConfigError(f"calibration file {shown} does not exist; run `fsllm-sim calibrate` (or set "
                          f"convergence.calibration to null and give a, b, c)") from None
    except OSError as exc:
        raise ConfigError(f"calibration file {shown} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if size > MAX_CALIBRATION_BYTES:
        raise ConfigError(f"calibration file {shown} is {size / 2 ** 20:.1f} MiB ({size} bytes), larger than the "
                          f"{MAX_CALIBRATION_BYTES / 2 ** 20:g} MiB ({MAX_CALIBRATION_BYTES} bytes) allowed")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"calibration file {shown} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}; allowed: a JSON file in UTF-8)") from None


def read_calibration_document(path, *, require_fit: bool = True) -> dict:
    """Read a calibration JSON (or a folder holding ``calibration.json``), checking its schema and fit.

    The file is untrusted: read with a size limit (:data:`MAX_CALIBRATION_BYTES`), UTF-8 only, and the fit's
    a, b, c (and the recorded target loss) must be numbers in the ranges of the scenario fields
    ``convergence.a/b/c`` (``calibration.target_val_loss``); the optional ``precision_penalty`` and
    ``batch_scaling`` sections are checked against :data:`PENALTY_FACTOR`, :data:`BATCH_EXPONENT` and
    :data:`TOKENS_PER_STEP`. Every problem is a one-line ConfigError naming the key and the allowed values.
    ``require_fit=False`` accepts a calibration without a fit (every run censored), as the precision check
    reads calibrations of one or two ranks."""
    import json

    from .config.loader import _display_path, check_number

    p = Path(path)
    if _mode(p) is not None and stat.S_ISDIR(_mode(p)):
        p = p / "calibration.json"
    shown = repr(_display_path(p))
    mode = _mode(p)
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(f"calibration file {shown} is not a regular file (allowed: a calibration JSON file)")
    text = _read_calibration_text(p, shown)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"calibration file {shown} is not readable JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"calibration file {shown} is not readable JSON: nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("schema") not in CALIBRATION_SCHEMAS:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise ConfigError(f"calibration file {shown} has schema {_short(schema)}; expected one of "
                          f"{', '.join(repr(x) for x in CALIBRATION_SCHEMAS)}")
    fit = doc.get("fit")
    if fit is not None and not isinstance(fit, dict):
        raise ConfigError(f"calibration file {shown}: fit is {_short(fit)} (allowed: a mapping with a, b, c, or null)")
    if not fit or not all(k in fit for k in ("a", "b", "c")):
        if require_fit:
            raise ConfigError(f"calibration file {shown} holds no fit (every rank was censored); rerun with more "
                              f"max_rounds or a looser target")
    else:
        specs = _fit_specs()
        for k in ("a", "b", "c"):
            fit[k] = check_number(fit[k], specs[k], f"calibration file {shown}: fit.{k} (convergence.{k})")
    target = doc.get("target")
    if target is not None and not isinstance(target, dict):
        raise ConfigError(f"calibration file {shown}: target is {_short(target)} (allowed: a mapping or null)")
    if target and target.get("value") is not None:
        target["value"] = check_number(target["value"], _fit_specs()["target"],
                                       f"calibration file {shown}: target.value (calibration.target_val_loss)")
    _check_precision_penalty(doc, shown)
    _check_noise_penalty(doc, shown)
    _check_batch_scaling(doc, shown)
    doc["_path"] = str(p)
    return doc


def _wire_precisions() -> tuple:
    from .config.loader import field_spec
    from .config.schema import Scenario

    return tuple(field_spec(Scenario, "training.activation_precision").choices)


def _spec(**bounds):
    from .config.fields import Spec

    return Spec(doc="", **bounds)


# Allowed values of the corrections a calibration file may carry (one range for the reader and the writers).
PENALTY_FACTOR = dict(gt=0, le=1000)  # T_precision(r) / T_own(r)
BATCH_EXPONENT = dict(ge=-1, le=2)  # beta in T ~ (b L)^beta; 0: tokens independent of b L, 1: steps independent
TOKENS_PER_STEP = dict(gt=0, le=1e9)  # b L


def _check_interval(value, spec, where: str):
    """``null`` or ``[lo, hi]`` of two numbers in ``spec``'s range with lo <= hi."""
    from .config.loader import check_number

    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{where} is {_short(value)} (allowed: [low, high], each {spec.allowed()}, or null)")
    lo, hi = (check_number(v, spec, f"{where}[{i}]") for i, v in enumerate(value))
    if lo > hi:
        raise ConfigError(f"{where} is {_short(value)}: low > high (allowed: [low, high] with low <= high)")
    return [lo, hi]


def _check_penalty_section(doc: dict, shown: str, key: str, what: str, check_name) -> None:
    """``doc[key]``: null, or {name: {factor, ci95?, ...}}, each name passed to ``check_name(name, where)`` (which
    raises for a name that is not allowed); the factors are checked (and replaced by the numbers read) in place."""
    from .config.loader import check_number

    section = doc.get(key)
    if section is None:
        return
    where = f"calibration file {shown}: {key}"
    if not isinstance(section, dict):
        raise ConfigError(f"{where} is {_short(section)} (allowed: a mapping from a {what} to its measured "
                          f"penalty, or null)")
    spec = _spec(**PENALTY_FACTOR)
    for name, entry in section.items():
        check_name(name, where)
        if not isinstance(entry, dict) or "factor" not in entry:
            raise ConfigError(f"{where}.{name} is {_short(entry)} (allowed: a mapping with factor, "
                              f"{spec.allowed()})")
        entry["factor"] = check_number(entry["factor"], spec, f"{where}.{name}.factor")
        entry["ci95"] = _check_interval(entry.get("ci95"), spec, f"{where}.{name}.ci95")


def _check_precision_penalty(doc: dict, shown: str) -> None:
    """``precision_penalty``: for wire precisions other than the calibration's own."""
    choices = _wire_precisions()
    own = measured_at(doc).get("activation_precision")

    def check_name(name, where):
        if name not in choices:
            raise ConfigError(f"{where}: {_short(name)} is not a wire precision (allowed: one of "
                              f"{', '.join(choices)})")
        if name == own:
            raise ConfigError(f"{where}.{name}: {name} is the calibration's own precision (allowed: the other "
                              f"precisions; its own factor is 1)")

    _check_penalty_section(doc, shown, "precision_penalty", "wire precision", check_name)


def noise_penalty_key(penalties: dict, sigma: float) -> str | None:
    """The key (sigma as text) of noise ``sigma`` among measured ``penalties``, or None."""
    return next((key for key in penalties if abs(float(key) - float(sigma)) <= 1e-9 * max(1.0, abs(float(sigma)))),
                None)


def _check_noise_penalty(doc: dict, shown: str) -> None:
    """``noise_penalty``: for noise sigmas other than the calibration's own (sigma > 0 as text, e.g. "0.25")."""

    def check_name(name, where):
        try:
            sigma = float(name)
        except (TypeError, ValueError):
            sigma = float("nan")
        if not 0 < sigma <= 100:
            raise ConfigError(f"{where}: {_short(name)} is not a noise sigma (allowed: a number > 0 and <= 100, "
                              f"as text)")

    _check_penalty_section(doc, shown, "noise_penalty", "noise sigma", check_name)


def _check_batch_scaling(doc: dict, shown: str) -> None:
    """``batch_scaling``: null, or {exponent, ci95?, tokens_per_step_range: [lo, hi], ...}; checked in place."""
    from .config.loader import check_number

    section = doc.get("batch_scaling")
    if section is None:
        return
    where = f"calibration file {shown}: batch_scaling"
    if not isinstance(section, dict):
        raise ConfigError(f"{where} is {_short(section)} (allowed: a mapping with exponent and "
                          f"tokens_per_step_range, or null)")
    spec = _spec(**BATCH_EXPONENT)
    if "exponent" not in section:
        raise ConfigError(f"{where}: exponent is missing (allowed: {spec.allowed()})")
    section["exponent"] = check_number(section["exponent"], spec, f"{where}.exponent")
    section["ci95"] = _check_interval(section.get("ci95"), spec, f"{where}.ci95")
    steps = _spec(**TOKENS_PER_STEP)
    if section.get("tokens_per_step_range") is None:
        raise ConfigError(f"{where}: tokens_per_step_range is missing (allowed: [low, high], each "
                          f"{steps.allowed()})")
    section["tokens_per_step_range"] = _check_interval(section["tokens_per_step_range"], steps,
                                                       f"{where}.tokens_per_step_range")


def _mode(p: Path) -> int | None:
    """``p``'s st_mode, or None when it cannot be stat'ed (missing, or a name the OS refuses): reading it then
    reports the reason in one line."""
    try:
        return p.stat().st_mode
    except OSError:
        return None


def _short(value) -> str:
    from .config.loader import shorten

    return shorten(value)


def measured_at(doc: dict) -> dict:
    """The settings a calibration was measured at, from its recorded training configuration (older files
    name ``lr`` and ``local_iters``; LoRA scaling was always standard before it became a choice). A
    calibration that chose a best learning rate per rank from a grid records the grid as ``learning_rates``
    (and no single ``learning_rate``); ``tokens_per_step`` is its b L."""
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict):
        cfg = {}
    get = lambda *keys, default=None: next((cfg[k] for k in keys if k in cfg), default)  # noqa: E731
    out = {"model": doc.get("model", get("model")), "num_clients": get("num_clients"),
           "local_iterations": get("local_iterations", "local_iters"), "batch_size": get("batch_size"),
           "seq_len": get("seq_len"), "activation_precision": get("activation_precision"),
           "lora_scaling": get("lora_scaling", default="standard"), "lora_alpha_per_rank": get("lora_alpha_per_rank"),
           "learning_rate": get("learning_rate", "lr"), "partition": get("partition"),
           "activation_noise_sigma": get("activation_noise_sigma")}
    for key in ("lora_alpha_per_rank", "learning_rate", "activation_noise_sigma"):
        if isinstance(out[key], (int, float)) and not isinstance(out[key], bool):
            out[key] = float(out[key])
    grid = doc.get("learning_rates")
    if out["learning_rate"] is None and isinstance(grid, list) and len(grid) > 1 \
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in grid):
        out["learning_rates"] = [float(x) for x in grid]
        best = {}
        for entry in doc.get("ranks") or []:
            if isinstance(entry, dict) and isinstance(entry.get("rank"), int) \
                    and isinstance(entry.get("learning_rate"), (int, float)) \
                    and not isinstance(entry.get("learning_rate"), bool):
                best[entry["rank"]] = float(entry["learning_rate"])
        out["best_learning_rates"] = best
    if all(isinstance(out[k], int) and not isinstance(out[k], bool) for k in ("batch_size", "seq_len")):
        out["tokens_per_step"] = out["batch_size"] * out["seq_len"]
    measured = [e["rank"] for e in doc.get("ranks") or [] if isinstance(e, dict) and isinstance(e.get("rank"), int)
                and not isinstance(e.get("rank"), bool)]
    if measured:
        out["rank_range"] = [min(measured), max(measured)]
    return {k: v for k, v in out.items() if v is not None}


def load_calibration_fit(path, scenario_tokens_per_round: float | None = None, *,
                         activation_precision: str | None = None,
                         tokens_per_step: float | None = None,
                         activation_noise_sigma: float | None = None) -> ConvergenceModel:
    """The fit of a calibration file written by `fsllm-sim calibrate`.

    With ``scenario_tokens_per_round`` the fit is read as training tokens to the target (rounds of the
    calibration times its own K E b L) and evaluated in the scenario's rounds, times the file's measured
    penalty for ``activation_precision`` (when it has one and the precision is not its own) and its
    tokens-per-step correction (b L = ``tokens_per_step`` against its own b L, when it carries
    ``batch_scaling``) and its measured penalty for ``activation_noise_sigma`` (when it carries one for that
    sigma); without it, in the calibration's own rounds, uncorrected."""
    doc = read_calibration_document(path)
    fit, where = doc["fit"], doc["_path"]
    regime = measured_at(doc)
    penalties = {k: float(v["factor"]) for k, v in (doc.get("precision_penalty") or {}).items()}
    noise_penalties = {k: float(v["factor"]) for k, v in (doc.get("noise_penalty") or {}).items()}
    try:
        a, b, c = float(fit["a"]), float(fit["b"]), float(fit["c"])
        if scenario_tokens_per_round is None:
            return ConvergenceModel(a=a, b=b, c=c, source=where, measured_at=regime, penalties=penalties,
                                    noise_penalties=noise_penalties)
        if doc.get("unit") == "tokens":
            scale = 1.0
        else:
            try:
                scale = float(tokens_per_round(regime["num_clients"], regime["local_iterations"],
                                               regime["batch_size"], regime["seq_len"]))
            except KeyError as exc:
                raise ConfigError(f"its configuration does not record {exc.args[0]}, so its rounds cannot be "
                                  f"converted to tokens") from None
        precision_factor, penalised = 1.0, None
        if activation_precision is not None and activation_precision != regime.get("activation_precision") \
                and activation_precision in penalties:
            precision_factor, penalised = penalties[activation_precision], activation_precision
        noise_factor, noised, noise_bound = 1.0, None, None
        own_sigma = float(regime.get("activation_noise_sigma") or 0.0)
        if activation_noise_sigma is not None and float(activation_noise_sigma) != own_sigma:
            key = noise_penalty_key(noise_penalties, float(activation_noise_sigma))
            if key is not None:
                noise_factor, noised = noise_penalties[key], float(activation_noise_sigma)
                bound = doc["noise_penalty"][key].get("bound")
                noise_bound = bound if bound in ("lower", "upper", "mixed") else None
        batch_factor, batch = 1.0, None
        section = doc.get("batch_scaling")
        if section and tokens_per_step is not None:
            if "tokens_per_step" not in regime:
                raise ConfigError("it carries batch_scaling but its configuration does not record batch_size and "
                                  "seq_len (integers), so its tokens per client step are unknown")
            beta = float(section["exponent"])
            batch = {"exponent": beta, "range": tuple(section["tokens_per_step_range"]),
                     "calibration": float(regime["tokens_per_step"]), "scenario": float(tokens_per_step)}
            batch_factor = (float(tokens_per_step) / float(regime["tokens_per_step"])) ** beta
        return ConvergenceModel(a=a * scale, b=b * scale, c=c, source=where, unit="tokens",
                                tokens_per_round=float(scenario_tokens_per_round), measured_at=regime,
                                precision_factor=precision_factor, batch_factor=batch_factor, penalties=penalties,
                                penalised_precision=penalised, batch_scaling=batch, noise_factor=noise_factor,
                                noise_penalties=noise_penalties, penalised_noise=noised,
                                noise_penalty_bound=noise_bound)
    except ConfigError as exc:
        raise ConfigError(f"calibration file {where!r}: {exc}") from None


def load_convergence(scenario) -> ConvergenceModel:
    """The scenario's N(r): tokens to the target from its calibration file (or the shipped one), times the
    file's measured corrections for the scenario's wire precision and tokens per client step, over the
    scenario's tokens per round; or its explicit a, b, c in rounds."""
    cfg = scenario.convergence
    if cfg.calibration is None:
        return ConvergenceModel(a=cfg.a, b=cfg.b, c=cfg.c, source="scenario")
    path = builtin_calibration_path() if cfg.calibration == BUILTIN_CALIBRATION else cfg.calibration
    return load_calibration_fit(path, scenario_tokens_per_round(scenario),
                                activation_precision=scenario.training.activation_precision,
                                tokens_per_step=scenario_tokens_per_step(scenario),
                                activation_noise_sigma=scenario.training.activation_noise_sigma)
