"""Sweeps on a Dask cluster: `bebert dse --cluster ADDRESS` (docs/CLUSTER.md).

    run_on_cluster(tasks, "tcp://scheduler:8786", jobs, done)   the cluster's workers
    run_on_cluster(tasks, "local", jobs, done)                  a LocalCluster of `jobs` workers on 127.0.0.1

Each task is the plain dict `bebert.dse.evaluate` makes; a worker runs `evaluate.run_task` on
it and sends back the result dict, and `done(result)` -- on the driver, which alone writes the
cache and the outputs -- records it the moment it arrives. So the cache, the resume (only
what no cache file holds is submitted) and the table are those of a local run. Area syntheses
are submitted with a higher priority (they take longest).

Before any work, every worker must run the driver's code: the same `toolkit_version` and the
same source fingerprint that the cache keys hold, or the sweep stops with one line naming the
worker. A worker that dies takes its task with it (Dask retries it elsewhere first); that
point's row carries the error and nothing is cached for it, so a re-run tries it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import evaluate as ev

LOCAL = "local"
CONNECT_TIMEOUT_S = 30


class ClusterError(OSError):
    """A cluster that cannot run the sweep: unreachable, no workers, or other code on them."""


def identity() -> tuple[str, str]:
    """What a worker must share with the driver: toolkit version and source fingerprint."""
    from bebert.api import source_fingerprint, toolkit_version

    return toolkit_version(), source_fingerprint("bebert", "compiler", "sim", "model", "hw")


def run_on_cluster(tasks: list[dict[str, Any]], address: str, jobs: int,
                   done: Callable[..., None]) -> None:
    """Run `tasks` on the cluster at `address` ("local": start one); `done(result)` per result."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ClusterError("--cluster needs Dask distributed: pip install 'bebert[cluster]'") from None
    cluster = None
    try:
        if address == LOCAL:
            cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    futures: dict = {}
    try:
        _check_workers(client, address)
        futures = {client.submit(ev.run_task, t, key=f"bebert-{t['kind']}-{t['key']}", pure=False,
                                 priority=1 if t["kind"] == "area" else 0): t for t in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                done(future.result())
            except Exception as e:  # noqa: BLE001 -- a lost worker: this point fails, the sweep goes on
                done({"kind": task["kind"], "key": task["key"],
                      "error": f"{type(e).__name__} on the cluster: {str(e).splitlines()[0] if str(e) else ''}"},
                     keep=False)
    except BaseException:
        # Interrupted: what finished is in the cache already; cancel what is in flight.
        client.cancel(list(futures))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(client, address: str) -> None:
    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {address} has no workers "
                               f"(none joined in {CONNECT_TIMEOUT_S} s)") from None
    mine = identity()
    theirs = client.run(identity)
    for worker, who in theirs.items():
        if tuple(who) != mine:
            raise ClusterError(f"worker {worker} of {address} runs {who[0]} (sources {who[1]}), this sweep "
                               f"{mine[0]} (sources {mine[1]}): install the same bebert on every worker")
