"""Where the heavy steps run (`engine` in params.yaml, conf/engine/).

`pandas`: in the stage's own process, as always. `dask`: on a Dask cluster. With `scheduler: null` the stage
starts a LocalCluster of worker processes on this machine (count, threads, memory limit and spill folder from
config) and stops it when it ends; with a scheduler address it joins a running cluster (`dask scheduler` and
`dask worker` on other machines). Dask is imported only here, and only for the dask engine, so the pandas
engine's stages start as fast as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from stages.lib.config import EngineConfig
from stages.lib.errors import fail

if TYPE_CHECKING:
    from distributed import Client


@contextlib.contextmanager
def engine_session(config: EngineConfig, project: Path = Path()) -> Iterator[Client | None]:
    """None for the pandas engine; for dask, a connected `distributed.Client`, closed (and a local cluster
    stopped) on exit, also when the stage fails."""
    if not config.distributed:
        yield None
        return
    import dask
    from distributed import Client, LocalCluster

    # The pandas engine's column types, whatever Dask prefers: text stays as pandas writes it.
    with dask.config.set({"dataframe.convert-string": False}):
        if config.scheduler is not None:
            try:
                client = Client(config.scheduler, timeout=config.connect_timeout, set_as_default=True)
            except (OSError, TimeoutError) as error:
                fail(
                    f"engine.scheduler: cannot reach the Dask scheduler at {config.scheduler} within {config.connect_timeout} s "
                    f"({error}); start it (`dask scheduler`, `dask worker {config.scheduler}`) or set engine.scheduler: null "
                    "for a local cluster"
                )
            with client, _one_line_on_lost_workers(config):
                yield client
            return
        spill = project / str(config.spill_dir)
        spill.mkdir(parents=True, exist_ok=True)
        cluster = LocalCluster(
            n_workers=config.workers,
            threads_per_worker=config.threads_per_worker,
            memory_limit=config.memory_limit,
            local_directory=str(spill),
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        )
        with cluster, Client(cluster, timeout=config.connect_timeout, set_as_default=True) as client, _one_line_on_lost_workers(config):
            yield client


def lost_workers_message(error: BaseException, config: EngineConfig) -> str | None:
    """The one line a stage stops with when the cluster lost the work (workers died, the scheduler went away);
    None for any other error (the stage's own, reported as it is)."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    where = f"the scheduler at {config.scheduler}" if config.scheduler else "the local cluster"
    if isinstance(error, KilledWorker):
        return (
            f"engine: Dask gave up on task {error.task!r} of {where}: the workers running it died repeatedly "
            f"({error.last_worker.address if error.last_worker else 'unknown worker'} last; out of memory?). "
            "Rerun the stage; if it recurs, raise engine.memory_limit"
        )
    if isinstance(error, CommClosedError):
        return f"engine: lost the connection to {where} ({type(error).__name__}: {error}); rerun the stage once it is up"
    return None


@contextlib.contextmanager
def _one_line_on_lost_workers(config: EngineConfig) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        message = lost_workers_message(error, config)
        if message is None:
            raise
        fail(message)
