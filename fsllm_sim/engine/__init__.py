"""The discrete-event engine: real split federated training timed over a fading radio and a contended server.

Modules, one concept each (read in this order):

* :mod:`.world`       one assembly of a scenario's radio environment, devices, profile, convergence, problem;
* :mod:`.allocation`  allocations and the policies that choose one per round (static, online);
* :mod:`.radio`       uplink transfers across fading blocks, the static downlink and broadcast;
* :mod:`.server`      the main server's disciplines (dedicated, partitioned, processor-sharing, fifo);
* :mod:`.backends`    what a phase costs: analytic profile, or the real PyTorch work;
* :mod:`.processes`   the SimPy processes: one per client, one round coordinator;
* :mod:`.trace`       the records: phase rows, channel rates, rounds;
* :mod:`.energy_account` the clients' energy of every row, round and client (computed when written);
* :mod:`.simulation`  ``simulate(scenario)`` ties them together.

Training and ``channel_models`` never import SimPy; the engine receives the allocation policy as a value.
"""
from .simulation import SimulationResult, simulate
from .world import World, build_world

__all__ = ["simulate", "SimulationResult", "build_world", "World"]
