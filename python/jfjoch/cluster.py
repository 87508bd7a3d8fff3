"""The per-image pass on a Dask cluster (``--dask tcp://scheduler:8786`` or ``--dask local:N``).

The client keeps the plan and the writer: it reads the input's metadata, runs the rotation first pass
itself, broadcasts the (picklable) plan once to every worker, and submits one task per shard of consecutive
images. Each worker opens the dataset itself (no pixels travel through the scheduler), runs
:class:`jfjoch.worker.ImageWorker` over its shard and returns the compact per-image results; the client
appends them to ``_process.h5`` in image order as shards complete, so the file is the same as a one-machine
run's. A worker that dies costs a retried shard; a shard that fails on bad data becomes failed images that
carry the error (with the shard's image range), and the run goes on. docs/cluster.md shows a SLURM setup.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import InputError, ProcessingError, UsageError
from .results import ImageResult

__all__ = ["ClusterSpec", "DaskRunner", "default_shard_size", "parse_dask_address"]

SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss", "local")
TASK_RETRIES = 2
"""A shard whose worker dies is resubmitted this many times."""
CONNECT_TIMEOUT_S = float(os.environ.get("JFJOCH_DASK_TIMEOUT", "15"))
"""Seconds to reach the scheduler (and for its first worker) before the run gives up with a one-line error."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: a scheduler address, or ``local`` with a number of worker processes."""

    address: str | None
    local_workers: int = 0

    @property
    def is_local(self) -> bool:
        return self.address is None


def parse_dask_address(text: str) -> ClusterSpec:
    """``tcp://host:port`` (or another Dask scheme) or ``local:N``; UsageError otherwise."""
    t = str(text).strip()
    if "://" not in t and ":" in t and t.split(":", 1)[0].lower() == "local":
        n = t.split(":", 1)[1]
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise UsageError(f"--dask local:N needs a number of worker processes 1..256 (got {text!r})")
        return ClusterSpec(address=None, local_workers=int(n))
    if "://" not in t:
        raise UsageError(f"--dask must be a scheduler address such as tcp://host:8786, or local:N (got {text!r})")
    scheme = t.split("://", 1)[0].lower()
    if scheme not in SCHEMES or scheme == "local":
        raise UsageError(f"--dask: unknown scheme {scheme!r} in {text!r} (use tcp://, tls://, ucx:// or local:N)")
    return ClusterSpec(address=t)


def default_shard_size(n_images: int, n_workers: int) -> int:
    """Shards of a few seconds each: at least 8 images, and about 4 shards per worker."""
    per = -(-n_images // max(4 * max(n_workers, 1), 1))
    return max(8, min(per, 256))


# --------------------------------------------------------------------------------------------- worker side
_WORKERS: dict[str, object] = {}
_DATASETS: dict[str, object] = {}
_LOCK = threading.Lock()


def _worker_for(token: str, plan):
    """The ImageWorker of a plan on this worker process, built once."""
    import warnings

    from .worker import ImageWorker

    with _LOCK:
        w = _WORKERS.get(token)
        if w is None:
            # the client reports the GPU fallback once; the workers stay quiet
            warnings.filterwarnings("ignore", message="no GPU available")
            _WORKERS.clear()  # one run at a time per worker process
            w = _WORKERS[token] = ImageWorker(plan)
        return w


def _dataset_for(source):
    from .pipeline import open_dataset

    key = repr(source)
    with _LOCK:
        ds = _DATASETS.get(key)
        if ds is None:
            for old in _DATASETS.values():
                with contextlib.suppress(Exception):
                    old.close()
            _DATASETS.clear()
            ds = _DATASETS[key] = open_dataset(source)
        return ds


def check_source(source) -> str:
    """Run on a worker before the shards: can it open the input? Returns its host name."""
    import socket

    _dataset_for(source)
    return socket.gethostname()


def process_shard(token: str, plan, source, numbers: list[int]) -> list[ImageResult]:
    """Open the dataset (cached per worker) and run the per-image pass over ``numbers``."""
    worker = _worker_for(token, plan)
    try:
        ds = _dataset_for(source)
    except Exception as e:  # the shard fails on this worker: its images carry the reason
        msg = f"images {numbers[0]}-{numbers[-1]}: the worker cannot open the input ({e})"
        return [ImageResult(number=n, ok=False, error=msg) for n in numbers]
    out = []
    for n in numbers:
        try:
            out.append(worker.run(ds, n))
        except (InputError, UsageError):
            raise  # a bad input (e.g. a CBF file of the series that does not match): the run stops, as locally
        except Exception as e:  # bad data beyond a corrupt frame: the image fails, the shard goes on
            out.append(ImageResult(number=n, ok=False, error=f"image {n}: {type(e).__name__}: {e}"))
    return out


# --------------------------------------------------------------------------------------------- client side
class DaskRunner:
    """Runs the per-image pass of a plan over shards on a Dask cluster (a context manager)."""

    def __init__(self, spec: ClusterSpec, notes: list[str] | None = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise UsageError("--dask needs Dask: pip install 'jfjoch[cluster]' (dask[distributed])") from None
        self.spec = spec
        self._cluster = None
        self.notes = notes if notes is not None else []
        try:
            if spec.is_local:
                self._cluster = LocalCluster(n_workers=spec.local_workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None, silence_logs=50)  # fmt: skip
                self.client = Client(self._cluster, timeout=CONNECT_TIMEOUT_S)
            else:
                self.client = Client(spec.address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            self.close()
            where = spec.address or f"local:{spec.local_workers}"
            raise UsageError(f"--dask: cannot reach the Dask scheduler at {where} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'timed out'})") from None  # fmt: skip
        self.workers = sorted(self.client.scheduler_info().get("workers", {}))
        if not self.workers:
            with contextlib.suppress(Exception):
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            self.workers = sorted(self.client.scheduler_info().get("workers", {}))
        if not self.workers:
            self.close()
            raise UsageError(f"--dask: the scheduler at {spec.address} has no workers")

    def describe(self) -> str:
        where = self.spec.address or f"local cluster of {self.spec.local_workers} processes"
        return f"dask: {where}, {len(self.workers)} worker(s): {', '.join(self.workers)}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if getattr(self, "client", None) is not None:
                self.client.close()
        with contextlib.suppress(Exception):
            if self._cluster is not None:
                self._cluster.close()

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_source(self, source) -> None:
        """Every worker must open the input itself (the path must be shared): one-line error otherwise."""
        futures = [self.client.submit(check_source, source, workers=[w], pure=False, allow_other_workers=False)
                   for w in self.workers]  # fmt: skip
        for w, f in zip(self.workers, futures):
            try:
                f.result()
            except Exception as e:
                raise InputError(f"--dask: worker {w} cannot open {source}: {str(e).splitlines()[0]} "
                                 "(the input must be on a file system every worker shares)") from None  # fmt: skip

    def run(self, plan, source, numbers: list[int], shard_size: int | None,
            progress: Callable[[int], None] | None = None) -> Iterator[ImageResult]:  # fmt: skip
        """ImageResults of ``numbers`` in order, computed shard by shard on the cluster."""
        from dask.distributed import as_completed

        size = shard_size or default_shard_size(len(numbers), len(self.workers))
        shards = [numbers[i:i + size] for i in range(0, len(numbers), size)]
        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        [plan_future] = self.client.scatter([plan], broadcast=True, hash=False)
        futures = [self.client.submit(process_shard, token, plan_future, source, sh, pure=False,
                                      retries=TASK_RETRIES, priority=-k) for k, sh in enumerate(shards)]  # fmt: skip
        index = {f.key: k for k, f in enumerate(futures)}
        done: dict[int, list[ImageResult]] = {}
        nxt = 0
        try:
            for fut in as_completed(futures):
                k = index[fut.key]
                try:
                    done[k] = fut.result()
                except (InputError, UsageError):
                    raise
                except Exception as e:  # the shard failed even after its retries
                    sh = shards[k]
                    msg = f"images {sh[0]}-{sh[-1]}: the shard failed on the cluster ({type(e).__name__}: {e})"
                    done[k] = [ImageResult(number=n, ok=False, error=msg) for n in sh]
                fut.release()
                if progress is not None:
                    progress(len(done[k]))
                while nxt in done:
                    yield from done.pop(nxt)
                    nxt += 1
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            with contextlib.suppress(Exception):
                self.client.cancel([plan_future])
        if nxt != len(shards):  # pragma: no cover - as_completed returns every future
            raise ProcessingError("the cluster did not return every shard")
