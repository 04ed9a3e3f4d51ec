"""Analyse every well of a plate on a dask cluster, reading straight from S3.

Needs no network: starts a local moto S3 server on 127.0.0.1 (``pip install
'moto[server]'``), packs the hcsfs sample plate into an RFC-9 ``.ozx`` archive and
uploads it, then on a ``LocalCluster`` of two worker processes:

* ``hcsfs.distributed.map_wells`` runs a per-well analysis (channel means and the
  fraction of bright pixels) - each task gets the plate pickled (a few hundred bytes:
  the URL and storage options, no metadata, no pixels), reopens it and reads its own
  well from S3;
* ``plate.to_dask(level)`` gives the whole plate as one lazy array
  ``(well, field, t, c, z, y, x)`` whose mean per well dask computes on the workers.

Swap the URL and ``storage_options`` for a real bucket and the cluster for a real one
(``Client("tcp://scheduler:8786")``) and nothing else changes.

    python examples/dask_cluster_analysis.py
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import tempfile

import fsspec
import numpy as np
from dask.distributed import Client, LocalCluster

import hcsfs
from hcsfs.distributed import map_wells
from hcsfs.sample import expected_field, write_sample_plate
from hcsfs.testing import CountingS3Server

BRIGHT = 3000


def analyse_well(well: str, pixels: np.ndarray) -> dict[str, object]:
    """Runs on a worker: ``pixels`` is the well's fields stacked, ``(field, t, c, z, y, x)``."""
    per_channel = pixels.mean(axis=(0, 1, 3, 4, 5))
    return {
        "channel_means": [round(float(m), 2) for m in per_channel],
        "bright_fraction": round(float((pixels > BRIGHT).mean()), 4),
        "worker_pid": os.getpid(),
    }


def main() -> int:
    """Run the example; returns the exit code."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per S3 request
    server = CountingS3Server().start()
    try:
        options = server.storage_options()
        url = "s3://examples/plate.ozx"
        with tempfile.TemporaryDirectory() as work:
            local = os.path.join(work, "plate.ome.zarr")
            spec = write_sample_plate(local)
            hcsfs.pack(local, os.path.join(work, "plate.ozx"))
            s3 = fsspec.filesystem("s3", **options)
            s3.mkdir("examples")
            s3.put(os.path.join(work, "plate.ozx"), url)
        plate = hcsfs.open_plate(url, storage_options=options)
        print(f"opened {plate!r}")
        print(f"a task ships the plate as {len(pickle.dumps(plate))} pickled bytes")

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            results = map_wells(plate, analyse_well, client=client, level=0)
            for well, result in results.items():
                print(f"{well}: {result}")

            data = plate.to_dask(0)
            print(f"plate as one array: {data.shape} {data.dtype}, {data.npartitions} chunks")
            means = client.compute(data.mean(axis=tuple(range(1, data.ndim)))).result()

        ok = True
        for i, well in enumerate(spec.wells):
            pixels = np.stack([expected_field(spec, well, f) for f in range(spec.fields)])
            expected = pixels.astype("float64").mean(axis=(0, 1, 3, 4, 5))
            ok &= np.allclose(results[well]["channel_means"], expected, atol=0.01)
            ok &= bool(np.isclose(means[i], pixels.mean()))
            print(f"{well}: mean {means[i]:.2f}")
        print("per-well results match numpy" if ok else "MISMATCH with numpy")
        return 0 if ok else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
