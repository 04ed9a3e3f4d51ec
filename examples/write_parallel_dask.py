"""Write a plate in parallel with dask: fields from worker processes, one big field streamed.

Run it as ``python examples/write_parallel_dask.py [URL]`` (default: a plate in a
temporary directory; an ``s3://`` URL works too with credentials in the environment).

* Fields are written by dask workers in separate processes (a ``LocalCluster`` with
  ``processes=True``), each opening the plate itself: many writers add fields to the
  same wells at once and none is lost (hcsfs serialises the metadata updates; see
  ``hcsfs.write.locking``).
* A field larger than a worker's chunk is streamed: the dask array goes chunk by chunk
  into zarr arrays opened on the plate's store; the pyramid is built level by level.
* Closing the plate writes consolidated metadata.
"""

from __future__ import annotations

import os
import sys
import tempfile

import dask
import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster

import hcsfs
from hcsfs.write import create_plate

WELLS = [("A", "1"), ("A", "2"), ("B", "1"), ("B", "2")]
FIELDS = 4


def field_data(row: str, column: str, field: int) -> np.ndarray:
    """Synthetic pixels of one field: (c, y, x) uint16."""
    seed = (ord(row) * 100 + int(column)) * 10 + field
    return np.random.default_rng(seed).integers(0, 4096, size=(2, 256, 256), dtype=np.uint16)


def write_field(url: str, row: str, column: str, field: int) -> str:
    """Runs on a worker: open the plate for writing, write one field with its pyramid."""
    plate = hcsfs.open_plate(url, mode="r+")
    image = plate.write_image(
        row,
        column,
        field,
        field_data(row, column, field),
        axes="cyx",
        scale=[1.0, 0.65, 0.65],
        channel_names=["DAPI", "GFP"],
        chunks=(1, 128, 128),
        levels=3,
    )
    return image.path


def main(url: str) -> None:
    plate = create_plate(url, plate_type=96, name="dask example", overwrite=True)
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True) as cluster,
        Client(cluster),
    ):
        tasks = [
            dask.delayed(write_field)(url, row, column, field)
            for row, column in WELLS
            for field in range(FIELDS)
        ]
        written = dask.compute(*tasks)
        print(f"workers wrote {len(written)} fields")

        # one large field, streamed from a lazy dask array (never in memory at once)
        big = da.random.randint(0, 4096, size=(2, 2048, 2048), chunks=(1, 512, 512))
        image = plate.write_image(
            "H", 12, 0, big.astype("uint16"), axes="cyx", chunks=(1, 256, 256), levels=4
        )
        print(f"streamed {image.path}: levels {[image.shape(i) for i in range(image.levels)]}")
    plate.close()  # consolidated metadata for the whole plate

    reader = hcsfs.open_plate(url)
    print("wells:", sorted(reader.wells))
    print("fields per well:", {p: len(w.images) for p, w in reader.wells.items()})
    print("consolidated:", reader.index.consolidated is not None)
    check = reader.well("A", 1).image(2).level(0)[...]
    print("pixels equal:", bool(np.array_equal(check, field_data("A", "1", 2))))


if __name__ == "__main__":
    target = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(tempfile.mkdtemp(), "dask-example.ome.zarr")
    )
    main(target)
