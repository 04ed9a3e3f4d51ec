"""Open a plate through hcsfs and hand it to other OME-Zarr tools (ngio, ngff-zarr).

Writes the hcsfs sample plate to a temporary directory, opens it with hcsfs and gives
the same plate to:

* ngio, as a zarr store (``hcsfs.HCSStore``);
* ngff-zarr, as an fsspec mapping over the hcsfs filesystem (ngff-zarr reads mappings,
  not zarr store objects).

The same code works for a plate on S3 or in an ``.ozx`` archive: only the URL (and
``storage_options``) passed to ``HCSFileSystem`` changes.

Run: ``python examples/open_with_peers.py``
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import ngff_zarr as nz
import ngio
import numpy as np

import hcsfs
from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import expected_field, write_sample_plate


def main() -> int:
    """Show ngio and ngff-zarr reading a plate through hcsfs; 0 when both see the pixels."""
    warnings.simplefilter("ignore")  # the peers warn about things irrelevant here
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "plate.ome.zarr")
        spec = write_sample_plate(url, version="0.5")

        plate = hcsfs.open_plate(url)
        print(f"hcsfs: {plate!r}, wells: {list(plate.wells)}")

        # One hcsfs filesystem for the plate; a zarr store over it for ngio.
        fs = HCSFileSystem(fo=url, skip_instance_cache=True)
        store = hcsfs.HCSStore(fs, "", read_only=True)

        ngio_plate = ngio.open_ome_zarr_plate(store, mode="r")
        print(f"ngio wells: {ngio_plate.wells_paths()}")
        print(f"ngio images in A/1: {ngio_plate.well_images_paths('A', '1')}")
        container = ngio_plate.get_image("B", "3", "1")
        pixels = container.get_image().get_as_numpy()
        print(f"ngio B/3/1: channels {container.channel_labels}, shape {pixels.shape}")
        ngio_ok = np.array_equal(pixels, expected_field(spec, "B/3", 1))
        print(f"ngio pixels equal: {ngio_ok}")

        nz_plate = nz.from_hcs_zarr(fs.get_mapper(""))
        print(f"ngff-zarr wells: {[w.path for w in nz_plate.wells]}")
        field = nz.from_ome_zarr(fs.get_mapper("B/3/1"))
        data = field.images[0].data.compute()
        print(f"ngff-zarr B/3/1: dims {field.images[0].dims}, {len(field.images)} levels")
        nz_ok = np.array_equal(data, expected_field(spec, "B/3", 1))
        print(f"ngff-zarr pixels equal: {nz_ok}")
    return 0 if ngio_ok and nz_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
