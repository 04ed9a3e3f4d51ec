"""Mount an ``.ozx`` plate as a read-only folder and read it with plain zarr.

Writes the sample plate, packs it into ``plate.ozx``, mounts the archive with
``python -m hcsfs.mount`` (same as ``hcsfs mount``) in a background process, lists the
folder, reads one field with ``zarr`` from the mount, and unmounts.

Needs FUSE: ``apt-get install fuse3`` and ``pip install 'hcsfs[mount]'``.

    python examples/mount_ozx.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import zarr

import hcsfs
from hcsfs.mount import fuse_unavailable_reason, is_mounted, unmount
from hcsfs.sample import expected_field, write_sample_plate


def main() -> int:
    """Run the example; returns the exit code."""
    reason = fuse_unavailable_reason()
    if reason is not None:
        print(f"cannot mount here: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "plate.ome.zarr")
        archive = os.path.join(work, "plate.ozx")
        mountpoint = os.path.join(work, "mnt")
        os.mkdir(mountpoint)
        spec = write_sample_plate(src)
        report = hcsfs.pack(src, archive)
        print(f"packed {report.members} members into {archive} ({report.archive_bytes} bytes)")

        proc = subprocess.Popen([sys.executable, "-m", "hcsfs.mount", archive, mountpoint])
        try:
            deadline = time.monotonic() + 30
            while not is_mounted(mountpoint):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the mount did not come up")
                time.sleep(0.05)

            print(f"{mountpoint}: {sorted(os.listdir(mountpoint))}")
            print(f"{mountpoint}/A/1: {sorted(os.listdir(os.path.join(mountpoint, 'A', '1')))}")
            field = zarr.open_group(mountpoint, mode="r")["A/1/0/0"][...]
            assert np.array_equal(field, expected_field(spec, "A/1", 0, 0))
            print(f"A/1 field 0 level 0: shape {field.shape}, dtype {field.dtype}, matches")
        finally:
            unmount(mountpoint)  # the mount process then exits by itself
            proc.wait(15)
        print(f"unmounted; mount process exited with {proc.returncode}")
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
