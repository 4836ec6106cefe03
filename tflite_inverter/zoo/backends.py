"""Where tasks run: a local pool, or Ray. Both run the same :func:`tflite_inverter.zoo.task.run_task`.

Local: a thread pool of ``jobs`` supervisors, each running one child process per model. Not a
``concurrent.futures.ProcessPoolExecutor``: when one of its worker processes dies (a segfault in
LiteRT or TensorFlow, a kill for memory) the executor marks the whole pool broken and every
pending model fails with it. A supervisor thread only waits on its child and reads ``/proc``, so
threads cost nothing under the GIL, and a dying child fails its own model only.

Ray: ``run_task`` as a ``ray.remote`` task (one CPU each) on a local Ray started here with
``ray.init(num_cpus=jobs)`` (shut down afterwards), on the Ray already initialised in this process,
or on an existing cluster by address (the package must be installed on its nodes). Each task still
runs its model in a child process with the same limits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ..errors import TfliteInverterError
from .task import PACKAGE_ROOT, TaskSpec, base_row, close_supervisors, run_task

OnEvent = Callable[[TaskSpec, dict | None], None]
BACKENDS = ("local", "ray")


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def run_local(specs: Sequence[TaskSpec], jobs: int, on_start: OnEvent, on_done: OnEvent) -> None:
    """Run every spec on ``jobs`` supervisor threads; ``on_done(spec, row)`` as each finishes."""
    lock = threading.Lock()

    def supervise(spec: TaskSpec) -> dict:
        with lock:
            on_start(spec, None)
        return run_task(spec)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="tflite-inverter-batch") as pool:
        futures = {pool.submit(supervise, spec): spec for spec in specs}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    with lock:
                        on_done(futures[future], future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            close_supervisors()  # serving workers (reuse > 1) of the pool's threads


def _import_ray():
    try:
        import ray
    except ImportError:
        raise TfliteInverterError("backend 'ray' needs the ray package: pip install 'tflite-inverter[ray]'") from None
    return ray


def start_local_ray(jobs: int) -> None:
    """A local Ray with ``jobs`` CPUs whose workers import this copy of the package."""
    ray = _import_ray()
    pythonpath = os.pathsep.join([PACKAGE_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False, object_store_memory=256 << 20,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})


def run_ray(specs: Sequence[TaskSpec], jobs: int, on_start: OnEvent, on_done: OnEvent, *,
            address: str | None = None) -> None:
    """Run every spec as a Ray task; ``on_start`` when submitted, ``on_done`` as each finishes."""
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            start_local_ray(jobs)
        started_here = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        refs = {}
        for spec in specs:
            refs[remote.remote(spec)] = spec
            on_start(spec, None)
        pending = list(refs)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                spec = refs[ref]
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as error:  # the supervisor itself was lost (node died)
                    row = dict(base_row(spec), status="crashed", cause="Ray task lost",
                               message=" ".join(str(error).split())[:400], phase="start", times={}, errors={})
                on_done(spec, row)
    finally:
        if started_here:
            ray.shutdown()
