"""Open a plate on S3 by its URL, print its summary and read one field.

Needs no network and no AWS account: starts a local moto S3 server on 127.0.0.1
(``hcsfs.testing.CountingS3Server``; ``pip install 'moto[server]'``), uploads the
hcsfs sample plate into a bucket, then opens ``s3://examples/plate.ome.zarr`` with
``storage_options`` that point at the server - exactly what you would pass for a
real bucket (``{"anon": True}``, ``{"profile": ...}``, an ``endpoint_url`` ...).
It also counts the requests the open and the read cost.

    python examples/open_s3_plate.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

import fsspec
import numpy as np

import hcsfs
from hcsfs.sample import expected_field, write_sample_plate
from hcsfs.summary import format_summary, plate_summary
from hcsfs.testing import CountingS3Server

BUCKET = "examples"


def upload(local_dir: str, url: str, storage_options: dict[str, object]) -> None:
    """Copy a local plate directory to ``url`` on S3."""
    s3 = fsspec.filesystem("s3", **storage_options)
    s3.mkdir(BUCKET)
    sources, targets = [], []
    for dirpath, _, names in os.walk(local_dir):
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local_dir).replace(os.sep, "/")
            sources.append(full)
            targets.append(f"{url}/{rel}")
    s3.put(sources, targets)


def main() -> int:
    """Run the example; returns the exit code."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per S3 request
    server = CountingS3Server().start()
    try:
        options = server.storage_options()
        url = f"s3://{BUCKET}/plate.ome.zarr"
        with tempfile.TemporaryDirectory() as work:
            local = os.path.join(work, "plate.ome.zarr")
            spec = write_sample_plate(local, version="0.5")
            upload(local, url, options)
        print(f"uploaded the sample plate to {url} at {server.endpoint_url}")

        server.reset_counts()
        plate = hcsfs.open_plate(url, storage_options=options)
        print(format_summary(plate_summary(plate)))
        print(f"open + summary: {sum(server.counts().values())} requests {dict(server.counts())}")

        server.reset_counts()
        image = plate.well("B", 3).image(1)
        pixels = image.level(0)[...]
        print(
            f"B/3 field 1: shape {pixels.shape} {pixels.dtype}, channels {image.channel_names}, "
            f"mean {pixels.mean():.2f} ({sum(server.counts().values())} requests)"
        )
        if not np.array_equal(pixels, expected_field(spec, "B/3", 1)):
            print("pixels differ from the sample plate", file=sys.stderr)
            return 1
        print("pixels match the sample plate")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
