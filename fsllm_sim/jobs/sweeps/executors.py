"""Where a sweep's runs execute: in this process, on a persistent pool of local processes, or as Ray tasks.

Every executor takes the same picklable work function and runs and yields the outcomes as they finish (in any
order); the caller writes them. Only the parent writes files, so workers never race on the run directory.

* :class:`SequentialExecutor` (``--workers 1``): no process to start; the reference the others must equal.
* :class:`LocalExecutor` (default): one pool of ``workers`` processes for the whole sweep, fed in chunks that
  are collected as they complete, so process start-up is paid once and the pipes are not crossed per run. The
  processes are forked when that is safe (the cheapest start: they inherit the imported modules); a parent
  holding other threads (a progress bar's monitor, Ray's gRPC client) starts them from a fork server instead.
  Each process receives the parent's profiles, so no worker loads the model.
* :class:`RayExecutor` (``--backend ray``): chunks of runs as Ray tasks on a cluster (``--address``) or on a
  local Ray instance started for the sweep with ``workers`` CPUs (and shut down after it).
"""
from __future__ import annotations

import multiprocessing
import os
import re
import socket
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from ...errors import ConfigError, FsllmError
from ...profiles import adopt_profiles

BACKENDS = ("local", "ray")
MAX_CHUNK = 32
CHUNKS_PER_WORKER = 32  # small chunks: the last ones end close together, so no worker idles at the end


def chunk_size(num_tasks: int, workers: int) -> int:
    """Runs per chunk: at most MAX_CHUNK, and about CHUNKS_PER_WORKER chunks per worker."""
    return max(1, min(MAX_CHUNK, num_tasks // max(1, workers * CHUNKS_PER_WORKER)))


def _init_worker(profiles: dict) -> None:
    adopt_profiles(profiles)


def _run_chunk(fn: Callable, tasks: list, profiles: dict | None = None) -> list:
    if profiles is not None:
        adopt_profiles(profiles)
    return [fn(t) for t in tasks]


class SequentialExecutor:
    name = "sequential"
    workers = 1

    def run(self, fn: Callable, tasks: list) -> Iterator:
        for task in tasks:
            yield fn(task)

    def close(self, cancel: bool = False) -> None:
        pass


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _context():
    """The start method of :func:`_start_method`; a fork server imports the work's modules once, before
    forking each worker from itself (started at most once per process)."""
    ctx = multiprocessing.get_context(_start_method())
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([__name__.rpartition(".")[0] + ".points"])
    return ctx


class LocalExecutor:
    """A ProcessPoolExecutor fed chunks as they complete (unordered); unlike multiprocessing.Pool, it notices a
    worker that died (killed by the system) instead of waiting for its result forever."""

    name = "local"

    def __init__(self, workers: int, profiles: dict):
        self.workers = workers
        ctx = _context()
        self.start_method = ctx.get_start_method()
        self._pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(profiles,))
        self._futures: list = []

    def run(self, fn: Callable, tasks: list) -> Iterator:
        size = chunk_size(len(tasks), self.workers)
        self._futures = [self._pool.submit(_run_chunk, fn, tasks[i:i + size]) for i in range(0, len(tasks), size)]
        try:
            for future in as_completed(self._futures):
                yield from future.result()
        except BrokenProcessPool:
            raise FsllmError("sweep: a worker process died (killed by the system, e.g. out of memory); rerun the same "
                             "command to resume: the finished runs are kept (or use fewer --workers)") from None

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for future in self._futures:
                future.cancel()
            terminate = getattr(self._pool, "terminate_workers", None)  # Python >= 3.14
            if terminate is not None:
                terminate()
            else:  # the chunks already running would otherwise finish first
                for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray: the ray package is not installed (allowed: install the extra with "
                          "pip install 'fsllm-sim[ray]', or use --backend local)") from None
    return ray


_HOST_PORT = re.compile(r"(?:ray://)?(?P<host>[^:/\s]+):(?P<port>[0-9]{1,5})")
CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str) -> None:
    """Fail in one line, at once, when a host:port address does not answer (Ray itself retries for minutes,
    logging from C++); other forms (auto, a ray:// URL without a port) are left to Ray."""
    m = _HOST_PORT.fullmatch(address.strip())
    if m is None:
        return
    try:
        socket.create_connection((m["host"], int(m["port"])), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError, OverflowError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"--address {address!r}: nothing answers at {m['host']}:{m['port']} ({why}; allowed: the "
                          f"address of a running Ray cluster's head, or no --address to start a local "
                          f"instance)") from None


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int, profiles: dict, address: str | None = None):
        ray = self._ray = import_ray()
        self._started = not ray.is_initialized()
        if self._started:
            try:
                if address:
                    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
                else:
                    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"--address {address!r}" if address else "--backend ray"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise ConfigError(f"{where}: cannot start or reach a Ray cluster ({first})") from None
        self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))
        self._profiles = ray.put(profiles)
        self._task = ray.remote(num_cpus=1)(_run_chunk)
        self._pending: list = []

    def run(self, fn: Callable, tasks: list) -> Iterator:
        ray = self._ray
        size = chunk_size(len(tasks), self.workers)
        self._pending = [self._task.remote(fn, tasks[i:i + size], self._profiles)
                         for i in range(0, len(tasks), size)]
        while self._pending:
            done, self._pending = ray.wait(self._pending, num_returns=1)
            yield from ray.get(done[0])

    def close(self, cancel: bool = False) -> None:
        ray = self._ray
        if cancel:
            for ref in self._pending:
                ray.cancel(ref, force=True)
        if self._started:
            ray.shutdown()


def check_backend(backend: str, workers: int, address: str | None = None) -> None:
    """The command line's backend choice, checked before any work: Ray installed, its address answering."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4096:
        raise ConfigError(f"--workers {workers!r} is invalid (allowed: an integer from 1 to 4096)")
    if address is not None and backend != "ray":
        raise ConfigError("--address applies to --backend ray only")
    if backend == "ray":
        ray = import_ray()
        if address and not ray.is_initialized():
            check_reachable(address)


def make_executor(backend: str, workers: int, profiles: dict, address: str | None = None, num_tasks: int | None = None):
    """The executor for ``--backend`` and ``--workers`` (a local pool never larger than the work)."""
    check_backend(backend, workers, address)
    if backend == "ray":
        return RayExecutor(workers, profiles, address)
    workers = min(workers, max(1, num_tasks if num_tasks is not None else workers))
    return SequentialExecutor() if workers == 1 else LocalExecutor(workers, profiles)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)

