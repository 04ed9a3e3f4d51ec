"""B4 local ``.ozx`` read throughput and B5 pack (directory -> ``.ozx``).

B4: hcsfs vs zarr's ``ZipStore`` vs the raw limit (the members' bytes read with plain
file reads at offsets known in advance); zarr's ``LocalStore`` on the same plate
unpacked shows zarr's own per-chunk ceiling. B5: ``hcsfs.pack`` vs ngff-zarr's
``write_store_to_zip`` vs a raw copy (every file's bytes concatenated into one file,
fsynced like hcsfs's output), and, for context, the same raw copy computing the CRC-32
a zip member needs. All of each move the same bytes; the files are read once before
timing so every reader starts from the page cache.
"""

from __future__ import annotations

import os
import statistics
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore, ZipStore

import hcsfs
from benchmarks.plates import PlateFiles

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def member_offsets(archive: str, names: list[str]) -> list[tuple[int, int]]:
    """(data offset, size) of each named STORED member, from the local headers."""
    out = []
    with zipfile.ZipFile(archive) as zf, open(archive, "rb") as handle:
        for name in names:
            info = zf.getinfo(name)
            handle.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
            name_len, extra_len = fields[-2], fields[-1]
            out.append(
                (info.header_offset + _LOCAL_HEADER.size + name_len + extra_len, info.file_size)
            )
    return out


def bench_ozx_local(
    archive: str,
    plate: PlateFiles,
    repeats: int,
    log: Callable[[str], None],
    directory: str | None = None,
) -> list[dict[str, Any]]:
    """B4: read every level-0 field of the local ``archive`` (the data plate).

    ``directory``, the same plate unpacked, adds zarr's ``LocalStore`` as a reference row.
    """
    nodes = [f"{well}/{f}" for well in plate.well_paths for f in range(2)]
    keys = [k for node in nodes for k in plate.chunk_keys(f"{node}/0")]
    offsets = member_offsets(archive, keys)
    with open(archive, "rb") as handle:  # warm the page cache for everyone
        while handle.read(1 << 24):
            pass
    if directory is not None:
        for key in keys:
            with open(os.path.join(directory, *key.split("/")), "rb") as handle:
                handle.read()

    def raw() -> int:
        total = 0
        with open(archive, "rb", buffering=0) as handle:
            for offset, size in offsets:
                handle.seek(offset)
                total += len(handle.read(size))
        return total

    def with_hcsfs() -> int:
        opened = hcsfs.open_plate(archive)
        total = 0
        for node in nodes:
            row, column, field = node.split("/")
            total += np.asarray(opened.well(row, column).image(field).level(0)[...]).nbytes
        return total

    def with_zipstore() -> int:
        store = ZipStore(archive, mode="r")
        try:
            root = zarr.open_group(store, mode="r")
            return sum(np.asarray(root[f"{node}/0"][...]).nbytes for node in nodes)  # type: ignore[index]
        finally:
            store.close()

    def with_localstore() -> int:
        assert directory is not None
        root = zarr.open_group(LocalStore(directory, read_only=True), mode="r")
        return sum(np.asarray(root[f"{node}/0"][...]).nbytes for node in nodes)  # type: ignore[index]

    tools: dict[str, Callable[[], int]] = {
        "raw": raw,
        "hcsfs": with_hcsfs,
        "zarr ZipStore": with_zipstore,
    }
    if directory is not None:
        tools["zarr LocalStore (unpacked directory)"] = with_localstore
    walls: dict[str, list[float]] = {tool: [] for tool in tools}
    nbytes: dict[str, int] = {}
    for fn in tools.values():  # once untimed: imports, first-use setup
        fn()
    for _ in range(repeats):  # rounds, so a busy spell on a shared machine hits every tool
        for tool, fn in tools.items():
            start = time.perf_counter()
            nbytes[tool] = fn()
            walls[tool].append(time.perf_counter() - start)
    rows = []
    for tool, tool_walls in walls.items():
        wall = statistics.median(tool_walls)
        rows.append(
            {
                "tool": tool,
                "wall_s": round(wall, 5),
                "walls_s": tool_walls,
                "bytes": nbytes[tool],
                "MBps": round(nbytes[tool] / wall / 1e6, 1),
                "fields": len(nodes),
                "members": len(keys),
            }
        )
    log("B4 " + " ".join(f"{r['tool']}={r['MBps']}MB/s" for r in rows))
    return rows


def bench_pack(
    src: str, workdir: str, plate: PlateFiles, repeats: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """B5: directory ``src`` (the data plate, 0.5) to ``.ozx``."""
    from ngff_zarr import write_store_to_zip

    files = sorted(plate.files)
    for key in files:  # warm the page cache for everyone
        with open(os.path.join(src, *key.split("/")), "rb") as handle:
            handle.read()
    out = os.path.join(workdir, "packed")
    os.makedirs(out, exist_ok=True)

    def raw(checksum: bool = False) -> int:
        dst = os.path.join(out, "raw-crc.bin" if checksum else "raw.bin")
        total = 0
        with open(dst, "wb") as sink:
            for key in files:
                with open(os.path.join(src, *key.split("/")), "rb") as handle:
                    data = handle.read()
                    if checksum:
                        zlib.crc32(data)
                    total += sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        return total

    def with_hcsfs() -> int:
        dst = os.path.join(out, "hcsfs.ozx")
        hcsfs.pack(src, dst, progress=False)
        return os.path.getsize(dst)

    def with_ngff_zarr() -> int:
        dst = os.path.join(out, "ngff-zarr.ozx")
        write_store_to_zip(src, dst, version="0.5")
        return os.path.getsize(dst)

    data_bytes = sum(len(v) for v in plate.files.values())
    tools: dict[str, Callable[[], int]] = {
        "raw copy": raw,
        "raw copy + CRC32": lambda: raw(checksum=True),
        "hcsfs": with_hcsfs,
        "ngff-zarr": with_ngff_zarr,
    }
    walls: dict[str, list[float]] = {tool: [] for tool in tools}
    output_bytes: dict[str, int] = {}
    for _ in range(repeats):  # rounds, so a busy spell on a shared machine hits every tool
        for tool, fn in tools.items():
            start = time.perf_counter()
            output_bytes[tool] = fn()
            walls[tool].append(time.perf_counter() - start)
    rows = []
    for tool, tool_walls in walls.items():
        wall = statistics.median(tool_walls)
        rows.append(
            {
                "tool": tool,
                "wall_s": round(wall, 5),
                "walls_s": tool_walls,
                "output_bytes": output_bytes[tool],
                "input_bytes": data_bytes,
                "files": len(files),
                "MBps": round(data_bytes / wall / 1e6, 1),
            }
        )
    log("B5 " + " ".join(f"{r['tool']}={r['MBps']}MB/s" for r in rows))
    return rows
