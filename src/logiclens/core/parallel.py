"""Where batches of work run: in this process, in local processes (joblib), or on a Ray cluster.

Every parallel stage of logiclens (the search, the certificates, the masks stage, the
record stage's shards) cuts its work into batches and hands a *job* (a picklable callable
of one batch) to :func:`map_batches`. The backend only changes where the batches run; the
results come back in batch order, so a run gives the same output on every backend.

``backend="ray"`` connects to the cluster at ``address`` (or ``RAY_ADDRESS``; with neither,
to a Ray instance this process already started, else it starts one on this machine). The
job is put in Ray's object store once and every task reads it from there (large read-only
inputs are not shipped per task). A task whose worker dies is retried by Ray
(:data:`RAY_TASK_RETRIES`); an exception raised by the job itself is raised here unchanged.
Ray is an optional extra (``pip install 'logiclens[ray]'``), imported only when chosen.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = [
    "BACKENDS",
    "RAY_TASK_RETRIES",
    "WorkerLostError",
    "check_backend",
    "connect_ray",
    "map_batches",
    "n_workers",
]

BACKENDS = ("local", "ray")
#: times Ray reruns a task whose worker process died (not one whose job raised)
RAY_TASK_RETRIES = 2


class WorkerLostError(RuntimeError):
    """A batch's worker process died every time it ran (out of memory, killed, a crash in native code)."""


B = TypeVar("B")
R = TypeVar("R")


def check_backend(backend: str, address: str | None = None) -> None:
    """Raise ValueError, on one line, unless ``backend`` (and ``address``) name a way to run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ValueError(f"a Ray address ({address!r}) needs backend 'ray', not {backend!r}")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray, which is not installed: pip install 'logiclens[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """Raise ValueError, on one line, when nothing listens at a ``host:port`` Ray address."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address}: expected host:port, ray://host:port or 'auto'")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as error:
        raise ValueError(f"--ray-address {address}: no Ray cluster answers there ({error.strerror or error})") from None


def connect_ray(address: str | None = None, n_cpus: int | None = None) -> Any:
    """The ``ray`` module, connected to a cluster.

    Parameters
    ----------
    address : str, optional
        ``host:port`` (or ``ray://host:port``, ``auto``) of a running cluster; default
        ``RAY_ADDRESS``. With neither, the Ray instance this process already joined is used,
        or a new one is started on this machine with ``n_cpus`` CPUs (default: all).
    """
    ray = _import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and address != "auto":
        _check_reachable(address)
    if ray.is_initialized():
        return ray
    try:
        if address is None:
            ray.init(num_cpus=n_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, TimeoutError) as error:
        where = address or "this machine"
        raise ValueError(f"cannot start or join a Ray cluster at {where}: {str(error).splitlines()[0]}") from None
    return ray


def n_workers(backend: str, n_jobs: int = 1, address: str | None = None) -> int:
    """How many batches can run at once: ``n_jobs`` processes here, or the cluster's CPUs."""
    if backend == "ray":
        return max(1, int(connect_ray(address).cluster_resources().get("CPU", 1)))
    from joblib import effective_n_jobs

    return effective_n_jobs(n_jobs)


def ray_node_cpus(address: str | None = None) -> int:
    """The CPUs of the cluster's largest live node (what one task may ask for at most)."""
    ray = connect_ray(address)
    return max(1, *(int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")))


def _call(job: Callable[[Any], Any], batch: Any) -> Any:
    return job(batch)


def map_batches(
    job: Callable[[B], R],
    batches: Sequence[B],
    backend: str = "local",
    n_jobs: int = 1,
    address: str | None = None,
    gpus_per_task: float = 0.0,
    cpus_per_task: float = 1.0,
) -> Iterator[R]:
    """``job(batch)`` for every batch, in batch order.

    Parameters
    ----------
    job : callable
        Picklable (a module-level function or an instance of a module-level class).
    batches : sequence
    backend : {"local", "ray"}
        ``"local"``: in this process when ``n_jobs`` is 1 or there is one batch, else in
        ``n_jobs`` joblib processes (-1: all cores). ``"ray"``: one Ray task per batch.
    n_jobs : int
        Local processes (ignored by Ray, which uses the cluster's CPUs).
    address : str, optional
        The Ray cluster (see :func:`connect_ray`).
    gpus_per_task : float
        GPUs each Ray task asks for (a task that runs a model on CUDA asks for one).
    cpus_per_task : float
        CPUs each Ray task asks for (a task that runs torch on several threads asks for them).
    """
    check_backend(backend, address)
    if backend == "ray":
        yield from _map_ray(job, batches, address, gpus_per_task, cpus_per_task)
        return
    from joblib import Parallel, delayed, effective_n_jobs

    workers = min(effective_n_jobs(n_jobs), len(batches))
    if workers <= 1:
        yield from (job(batch) for batch in batches)
        return
    yield from Parallel(n_jobs=workers, return_as="generator")(delayed(_call)(job, batch) for batch in batches)


def _map_ray(job: Callable[[B], R], batches: Sequence[B], address: str | None, gpus: float, cpus: float) -> Iterator[R]:
    ray = connect_ray(address)
    from ray.exceptions import RayTaskError, WorkerCrashedError

    task = ray.remote(max_retries=RAY_TASK_RETRIES, num_cpus=cpus, num_gpus=gpus)(_call)
    job_ref = ray.put(job)  # once: every task reads the job (and its arrays) from the object store
    refs = [task.remote(job_ref, batch) for batch in batches]
    try:
        for ref in refs:
            yield ray.get(ref)
    except RayTaskError as error:  # the job raised: raise its own exception here
        _settle(ray, refs)
        cause = getattr(error, "cause", None)
        raise (cause if isinstance(cause, Exception) else RuntimeError(str(error).splitlines()[0])) from None
    except WorkerCrashedError as error:
        _settle(ray, refs)
        raise WorkerLostError(
            f"a Ray worker died {RAY_TASK_RETRIES + 1} times running a batch: {str(error).splitlines()[0]}"
        ) from None


def _settle(ray: Any, refs: list[Any]) -> None:
    """Wait until every task has ended, so that none writes after the error is raised.

    Tasks are not cancelled: cancelling a task as it completes can crash Ray 2.60's driver
    ("Tried to complete task that was not pending"). A job interrupted here (Ctrl-C) ends
    with this driver, and Ray stops its tasks then.
    """
    ray.wait(refs, num_returns=len(refs), fetch_local=False)
