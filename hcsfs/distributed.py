"""Run per-well analyses of a plate on dask workers.

Recipe: open the plate once, where you submit from, and hand the :class:`~hcsfs.Plate`
to the workers. A plate pickles as its filesystem's constructor arguments (URL,
storage options, mode, cache sizes) - a few hundred bytes - never as metadata or
pixels it has read: each worker process reopens it on first use and keeps one
filesystem per plate (fsspec's instance cache), so a worker reads a well's metadata
and chunks itself, straight from the storage.

Two ways to use it:

* the whole plate as one lazy array (``plate.to_dask(level)``, dimensions
  ``(well, field, *axes)``) reduced with dask, e.g. the mean per well::

      data = plate.to_dask(1)
      means = data.mean(axis=tuple(range(1, data.ndim))).compute()

* any Python function of one well's pixels, with :func:`map_wells`::

      with LocalCluster(processes=True) as cluster, Client(cluster) as client:
          results = map_wells(plate, lambda well, px: float(px.mean()), client=client)

``storage_options`` must work on the workers too: for S3 give credentials and the
endpoint explicitly (or make sure the workers' environment has them), not a session
object that only exists on the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    from distributed import Client

    from hcsfs.plate import Plate

__all__ = ["map_wells", "read_well"]

T = TypeVar("T")


def read_well(
    plate: Plate, well: str, level: int = 0, fields: Sequence[int | str] | None = None
) -> np.ndarray:
    """The pixels of ``well`` at ``level`` as one numpy array ``(field, *axes)``.

    Parameters
    ----------
    plate
        The plate.
    well
        The well path, ``"A/1"``.
    level
        The resolution level.
    fields
        The fields to read, in order; default every field the well lists (they must
        agree in shape and dtype).

    Returns
    -------
    numpy.ndarray
        The stacked fields, read in the calling thread (dask's synchronous scheduler).
    """
    data = plate.to_dask(level, fields=fields, wells=[well])[0]
    return data.compute(scheduler="synchronous")


def _run_well(
    plate: Plate,
    well: str,
    level: int,
    fields: Sequence[int | str] | None,
    func: Callable[[str, np.ndarray], T],
) -> T:
    """What runs on a worker: read one well, apply ``func``."""
    try:
        return func(well, read_well(plate, well, level, fields))
    except Exception as exc:
        exc.add_note(f"map_wells: well {well} of {plate.url} (level {level})")
        raise


def map_wells(
    plate: Plate,
    func: Callable[[str, np.ndarray], T],
    *,
    level: int = 0,
    client: Client | None = None,
    fields: Sequence[int | str] | None = None,
    wells: Sequence[str] | None = None,
) -> dict[str, T]:
    """Compute ``func(well_path, pixels)`` for every well, on dask workers.

    One task per well: the task reopens the plate from its pickled arguments (a few
    hundred bytes; no cached metadata or data is shipped), reads the well's fields at
    ``level`` into memory and calls ``func``. Only ``func``'s result comes back.

    Parameters
    ----------
    plate
        The plate (any backend; for remote plates the storage options must be usable
        on the workers).
    func
        ``func(well_path, pixels) -> result``, with ``pixels`` a numpy array
        ``(field, *image axes)`` (fields in ``fields`` order, default the well's own).
        Must be picklable for process-based workers (lambdas are fine: dask uses
        cloudpickle).
    level
        The resolution level to read; a coarser level means less memory per task.
    client
        A ``distributed.Client`` to submit to. Default: ``dask.compute`` on the
        current scheduler (an active ``distributed`` client if there is one, else
        threads in this process).
    fields
        The fields to read from every well (paths or ints); default each well's own
        fields, which must then agree in shape and dtype within the well - wells may
        differ from each other.
    wells
        The wells, as ``"A/1"`` paths; default every well the plate declares whose
        group exists (checked here in one round; each task then reads its own well).

    Returns
    -------
    dict
        Well path → ``func``'s result, in the order of ``wells`` (plate order by
        default).

    Raises
    ------
    Exception
        Whatever ``func`` or the read raised on a worker, with a note naming the well.

    Examples
    --------
    >>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2) as cluster, Client(cluster) as client:  # doctest: +SKIP
    ...     means = map_wells(plate, lambda well, px: float(px.mean()), level=1, client=client)
    """
    import dask

    selected = plate._select_wells(wells)
    if wells is None:
        selected = plate._sync(plate._present_wells(selected))
    chosen = None if fields is None else [str(f) for f in fields]
    if client is not None:
        run = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                _run_well,
                plate,
                well,
                level,
                chosen,
                func,
                key=f"hcsfs-map-wells-{run}-{well.replace('/', '-')}",
                pure=False,
            )
            for well in selected
        ]
        results = client.gather(futures)
    else:
        tasks = [
            dask.delayed(_run_well, pure=False)(plate, well, level, chosen, func)
            for well in selected
        ]
        results = dask.compute(*tasks)
    return dict(zip(selected, results, strict=True))
