"""Per-client split points ℓ_k ("mixed splits") in SplitFed v1 and v2, and the aggregation by global block index.

Blocks are named by their 0-based global index j, as in the adapter keys ``blocks.<j>.…`` (:mod:`.lora`); client k
holds blocks j < ℓ_k (the spec's blocks 1..ℓ_k), the main server (MS) blocks j ≥ ℓ_k for that client.

Who holds what:

* client k: embedding + blocks < ℓ_k, through its own :class:`~fsllm_sim.training.split.ClientPart` view over the
  ONE frozen base (one view per distinct split, shared by the clients at that split), and its adapter θ_c,k: the
  LoRA tensors of blocks < ℓ_k under their global keys.
* MS: blocks ≥ ℓ_k for client k, through one :class:`~fsllm_sim.training.split.ServerPart` view per distinct split.
  v1: one server copy θ_s,k per client (blocks ≥ ℓ_k). v2: ONE shared copy of every block j ≥ min_k ℓ_k, used for
  every client with ℓ_k ≤ j and updated by each request in the order the MS serves them.
* FS: the client uploads (each client's blocks < ℓ_k) — and, with mixed splits, part of the MS's copies (below).

Aggregation (the HSplitLoRA rule): at a round's end, with P the participating clients and w_k = n_k, every block j
and LoRA tensor gets the new global value

    θ_j = Σ_{k∈P} w_k θ_j^(k) / Σ_{k∈P} w_k,

θ_j^(k) being the copy that trained block j for client k: its own adapter where j < ℓ_k, the MS's copy otherwise.
v1: that is client k's server copy θ_s,k. v2: the shared copy, which therefore stands for every participant with
ℓ_k ≤ j, with the sum of their weights. (``aggregation="product"``: the same groups, per block, through the
product average of :mod:`.fed_server`.) With one split for everybody this is exactly today's FS FedAvg of the
client adapters plus the MS's v1 average (v2: the shared copy kept as it is); :func:`aggregate_by_block` reduces to
those tensor for tensor (tested).

After the aggregation the FS sends client k the global values of ITS blocks < ℓ_k — a payload of S_c(ℓ_k), the
size of its own upload (``SplitFedSystem.adapter_bits_of(k)``; the message is ``SplitFedSystem.broadcast_for(k,
msg)``) — and the MS sets every server copy of block j (v1: all K copies, participants or not; v2: the shared one)
to θ_j.

Privacy cost of mixed splits: with one split, the FS sees only client adapters and the MS only server adapters.
With mixed splits a block j in the overlap min ℓ ≤ j < max ℓ is trained on the device for some clients and on the
MS for others, so neither party can average it alone: the MS sends the FS its copies of the overlap blocks (v1:
each participant's own copy θ_s,k of blocks ℓ_k..max ℓ-1; v2: the shared copy of blocks min ℓ..max ℓ-1), the FS
averages every block below max ℓ and sends the global overlap blocks back to the MS. So the FS sees server-side
adapters of the overlap blocks (in v1 per client), and the MS sees the global values of blocks that clients trained
on their devices; knowing its own copies and the weights, the MS can subtract them and recover the weighted sum of
the device-trained copies — a client's own adapter block whenever a single participant trained that block on its
device. Blocks ≥ max ℓ stay on the MS, blocks < min ℓ on the FS. In this process the exchange happens in memory at
full precision, like the MS's own v1 average; :func:`overlap_exchange_bits` counts what it would carry at the
adapter precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.fed_server import FederatedServer, aggregate_states
from fsllm_sim.training.lora import AdapterSlots, AdapterState, copy_into, detached_state
from fsllm_sim.training.main_server import MainServer
from fsllm_sim.training.messages import AdapterMessage, BroadcastMessage
from fsllm_sim.training.optim import OptimizerSpec
from fsllm_sim.training.split import ServerPart
from fsllm_sim.training.wire import state_bits

#: (a partial adapter state, its FedAvg weight): one copy that trained some blocks for some clients.
Piece = tuple[Mapping[str, torch.Tensor], float]


def check_splits(splits, num_clients: int, num_blocks: int | None = None,
                 model_name: str = "the model") -> tuple[int, ...]:
    """ℓ_k for every client: ``num_clients`` integers in 1..J-1 (J unknown: only >= 1 is checked)."""
    top = "J-1" if num_blocks is None else str(num_blocks - 1)
    where = "" if num_blocks is None else f" for {model_name} with J={num_blocks} blocks"
    ok = (isinstance(splits, (list, tuple)) and len(splits) == num_clients
          and all(not isinstance(s, bool) and isinstance(s, int) and s >= 1
                  and (num_blocks is None or s <= num_blocks - 1) for s in splits))
    if not ok:
        shown = tuple(splits) if isinstance(splits, list) else splits
        raise ConfigError(f"splits={shown!r} is invalid{where}; allowed: {num_clients} integers (one per client), "
                          f"each in 1..{top}")
    return tuple(int(s) for s in splits)


def block_index(key: str) -> int:
    """j of a global adapter key ``blocks.<j>.…``."""
    head, _, rest = key.partition(".")
    num, _, _ = rest.partition(".")
    if head != "blocks" or not num.isdigit():
        raise ConfigError(f"adapter key {key!r} is not of the form 'blocks.<j>.<path>'")
    return int(num)


def keys_by_block(keys) -> dict[int, list[str]]:
    """Global adapter keys grouped by block index, in their given order."""
    out: dict[int, list[str]] = {}
    for k in keys:
        out.setdefault(block_index(k), []).append(k)
    return out


def restrict(state: Mapping[str, torch.Tensor], keep) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose block index satisfies ``keep(j)`` (same tensor objects, not copies)."""
    return {k: v for k, v in state.items() if keep(block_index(k))}


def aggregate_by_block(pieces: Sequence[Piece], method: str = "fedavg") -> dict[str, torch.Tensor]:
    """Every block's global value: the weighted aggregate (:func:`aggregate_states`) over the pieces holding it.

    A piece must hold either all of a block's tensors or none of them (a LoRA module's A and B always go
    together). Within a block, pieces are averaged in the order given. Blocks come out in increasing j.
    """
    groups: dict[int, list[Piece]] = {}
    for state, weight in pieces:
        for j, keys in keys_by_block(state).items():
            groups.setdefault(j, []).append(({k: state[k] for k in keys}, float(weight)))
    out: dict[str, torch.Tensor] = {}
    for j in sorted(groups):
        group = groups[j]
        try:
            out.update(aggregate_states([s for s, _ in group], [w for _, w in group], method))
        except ConfigError as e:
            raise ConfigError(f"block {j}: {e}") from None
    return out


def pieces_v1(client_states: Mapping[int, Mapping[str, torch.Tensor]],
              server_states: Mapping[int, Mapping[str, torch.Tensor]],
              weights: Mapping[int, float]) -> list[Piece]:
    """v1: per participant k (weight w_k), its client adapter (blocks < ℓ_k) and its server copy (blocks ≥ ℓ_k)."""
    out: list[Piece] = []
    for k in sorted(weights):
        out.append((client_states[k], weights[k]))
        out.append((server_states[k], weights[k]))
    return out


def pieces_v2(client_states: Mapping[int, Mapping[str, torch.Tensor]], shared: Mapping[str, torch.Tensor],
              splits: Mapping[int, int], weights: Mapping[int, float]) -> list[Piece]:
    """v2: per participant k its client adapter (weight w_k), then the shared server copy
    (:func:`shared_copy_pieces`)."""
    return [(client_states[k], weights[k]) for k in sorted(weights)] + shared_copy_pieces(shared, splits, weights)


def shared_copy_pieces(shared: Mapping[str, torch.Tensor], splits: Mapping[int, int],
                       weights: Mapping[int, float]) -> list[Piece]:
    """Each block j of the v2 shared server copy once, weighted by Σ w_k over the participants with ℓ_k ≤ j (the
    clients it trained block j for); a block no participant used on the MS is left out."""
    out: list[Piece] = []
    for j, keys in keys_by_block(shared).items():
        w = sum(weights[k] for k in sorted(weights) if splits[k] <= j)
        if w > 0:
            out.append(({key: shared[key] for key in keys}, w))
    return out


def overlap_exchange_bits(server_pieces: Sequence[Piece], global_state: Mapping[str, torch.Tensor],
                          splits: Sequence[int], precision: str) -> tuple[int, int]:
    """(MS -> FS, FS -> MS) bits of the overlap exchange (module doc) at ``precision``: the MS's pieces of the
    blocks min ℓ..max ℓ-1, and the global values of those blocks. (0, 0) when every client has the same split."""
    lo, hi = min(splits), max(splits)

    def inside(j: int) -> bool:
        return lo <= j < hi

    up = sum(state_bits(restrict(s, inside), precision) for s, w in server_pieces if w > 0 and restrict(s, inside))
    down = state_bits(restrict(global_state, inside), precision) if hi > lo else 0
    return int(up), int(down)


# --------------------------------------------------------------------------------------------- the two servers


class MixedFederatedServer(FederatedServer):
    """The FS under mixed splits: its global state holds every block some client holds (j < max ℓ); an upload must
    carry exactly its client's blocks; the aggregation itself needs the MS's overlap blocks, so it is done by
    :meth:`SplitFedSystem.aggregate <fsllm_sim.training.system.SplitFedSystem.aggregate>` (:meth:`take_uploads`,
    :func:`aggregate_by_block`, :meth:`set_global`)."""

    def __init__(self, initial_state: Mapping[str, torch.Tensor], client_keys: Mapping[int, Sequence[str]], *,
                 broadcast_precision: str = "fp32", aggregation: str = "fedavg"):
        held = {k for keys in client_keys.values() for k in keys}
        super().__init__({k: v for k, v in initial_state.items() if k in held},
                         broadcast_precision=broadcast_precision, aggregation=aggregation)
        self.client_keys = {int(c): list(keys) for c, keys in client_keys.items()}

    def receive(self, msg: AdapterMessage) -> None:
        expected = self.client_keys.get(msg.client_id)
        if expected is None:
            raise ConfigError(f"client_id={msg.client_id!r} is unknown to the federated server; allowed: "
                              f"{sorted(self.client_keys)}")
        if set(msg.state) != set(expected):
            raise ConfigError(f"adapter upload of client {msg.client_id} has keys that do not match its split's "
                              f"blocks (different split or rank?)")
        self._inbox[msg.client_id] = msg

    def take_uploads(self) -> list[AdapterMessage]:
        """The uploads received this round, by client id; the inbox is emptied."""
        if not self._inbox:
            raise ConfigError("the federated server received no adapter upload this round; nothing to aggregate")
        msgs = [self._inbox[k] for k in sorted(self._inbox)]
        self._inbox.clear()
        return msgs

    def aggregate(self) -> BroadcastMessage:
        raise ConfigError("with per-client splits the FS cannot aggregate alone (it needs the MS's overlap "
                          "blocks); call SplitFedSystem.aggregate()")

    def set_global(self, state: Mapping[str, torch.Tensor], contributors: Sequence[int]) -> BroadcastMessage:
        """Take the new global values of the FS's blocks from ``state``; next round; the broadcast of them all."""
        self.global_state = detached_state({k: state[k] for k in self.global_state})
        self.round += 1
        return self.broadcast(contributors=list(contributors))

    def broadcast_for(self, client_id: int, msg: BroadcastMessage) -> BroadcastMessage:
        """Client ``client_id``'s part of the broadcast ``msg``: its blocks only, payload S_c(ℓ_k)."""
        keys = self.client_keys[client_id]
        state = {k: msg.state[k] for k in keys}
        return BroadcastMessage(round=msg.round, state=state, precision=msg.precision,
                                payload_bits=state_bits(state, msg.precision), contributors=list(msg.contributors))


class MixedMainServer(MainServer):
    """The MS under mixed splits: one server view per distinct split; :meth:`step` (inherited) serves client k
    through its split's view. v1: a copy per client over blocks ≥ ℓ_k. v2: one shared copy over blocks ≥ min ℓ;
    client k's state is the sub-dict of blocks ≥ ℓ_k (the same Parameter objects), and one optimiser over the shared
    copy steps only the tensors a request touched (AdamW keeps per-tensor moments and step counts and skips tensors
    without a gradient), so the shared block j moves exactly on the requests of clients with ℓ_k ≤ j.

    The global server state is the one of the last aggregation (:meth:`load_global`), not an average recomputed
    from the copies mid-round."""

    def __init__(self, parts: Mapping[int, tuple[ServerPart, AdapterSlots]],
                 initial_state: Mapping[str, torch.Tensor], *, mode: str = "v1", optimizer: OptimizerSpec,
                 client_weights: Mapping[int, float], gradient_precision: str = "fp16",
                 reset_optimizer_each_round: bool = False, aggregation: str = "fedavg"):
        self.parts = {int(k): v for k, v in parts.items()}
        if set(self.parts) != {int(k) for k in client_weights}:
            raise ConfigError(f"server views given for clients {sorted(self.parts)} but weights for "
                              f"{sorted(int(k) for k in client_weights)}; they must match")
        # the lowest split's view: its slots hold every block the MS trains for some client (MainServer.part/slots)
        lowest_part, lowest_slots = min(self.parts.values(), key=lambda ps: ps[0].split)
        super().__init__(lowest_part, lowest_slots, initial_state, mode=mode, optimizer=optimizer,
                         client_weights=client_weights, gradient_precision=gradient_precision,
                         reset_optimizer_each_round=reset_optimizer_each_round, aggregation=aggregation)
        self._global = detached_state({k: initial_state[k] for k in self.slots.keys})

    def _build_states(self, initial_state: Mapping[str, torch.Tensor]) -> dict[int, AdapterState]:
        if self.mode == "v1":
            return {k: self.parts[k][1].new_state_like(initial_state) for k in self.client_ids}
        self.shared: AdapterState = self.slots.new_state_like(initial_state)  # blocks ≥ min ℓ
        return {k: {key: self.shared[key] for key in self.parts[k][1].keys} for k in self.client_ids}

    @property
    def splits(self) -> dict[int, int]:
        return {k: self.parts[k][0].split for k in self.client_ids}

    def part_for(self, client_id: int) -> tuple[ServerPart, AdapterSlots]:
        self.state_for(client_id)  # a one-line error for an unknown client
        return self.parts[client_id]

    def _build_optimizers(self) -> None:
        if self.mode == "v1":
            super()._build_optimizers()
            return
        opt = self.optimizer_spec.build(self.shared.values())  # one optimiser over the whole shared copy
        self._optimizers = {k: opt for k in self.client_ids}

    def distinct_states(self) -> list[AdapterState]:
        return list(self.states.values()) if self.mode == "v1" else [self.shared]

    def pieces(self, weights: Mapping[int, float]) -> list[Piece]:
        """The MS's part of the aggregation over the participants ``weights`` names (module doc)."""
        if self.mode == "v1":
            return [(self.states[k], weights[k]) for k in sorted(weights)]
        return shared_copy_pieces(self.shared, self.splits, weights)

    def aggregate(self, weights: Mapping[int, float] | None = None) -> None:
        raise ConfigError("with per-client splits the MS cannot aggregate alone (the FS holds the overlap blocks' "
                          "client copies); call SplitFedSystem.aggregate()")

    def load_global(self, state: Mapping[str, torch.Tensor]) -> None:
        """Round end: every server copy := the new global values of its blocks (v1: all K copies)."""
        for s in self.distinct_states():
            copy_into(s, state)
        self._global = detached_state({k: state[k] for k in self.slots.keys})
        if self.reset_optimizer_each_round:
            self._build_optimizers()

    def global_state(self) -> dict[str, torch.Tensor]:
        return detached_state(self._global)
