"""Tool runners: how hcsfs, the raw limit and each peer open and read a plate on S3.

Run as a child process by :mod:`benchmarks.harness` (``python benchmarks/peers.py TOOL``):
it imports the tool once, prints ``{"ready": true}``, then answers one JSON task per
stdin line with one JSON result line. The parent counts the requests the S3 server
sees between a task line and its answer, so each task is measured exactly, and kills
the child if it overruns. State (opened plates, arrays) lives between tasks so that
"prepare" and "read" can be measured apart.

Task: ``{"op": ..., "url": ..., "options": {...}, "deadline": seconds, ...}``; ops:

``open``      open the plate and enumerate every well, field and level-0 shape/dtype
``prepare``   open what is needed to read ``nodes`` (e.g. ``["B/2/0"]``), untimed goal
``read``      read the level-0 pixels of the prepared ``nodes``
``cat``       (raw) fetch ``keys`` with s3fs ``_cat_file``, all at once
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOOLS = (
    "hcsfs",
    "hcsfs-store",
    "raw",
    "zarr",
    "ngio",
    "ngff-zarr",
    "ome-zarr-py",
    "ome-zarr-models",
    "zip-s3",
)

Row = tuple[str, tuple[int, ...], str]


class Deadline(Exception):
    """Raised inside a walk when the task's time is up."""


class Clock:
    """A deadline for one task."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.perf_counter() + seconds

    def check(self) -> None:
        """Raise :class:`Deadline` when the time is up."""
        if self.end is not None and time.perf_counter() > self.end:
            raise Deadline


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    return attrs.get("ome", attrs)


def _s3(options: dict[str, Any], *, asynchronous: bool = False) -> Any:
    import s3fs

    return s3fs.S3FileSystem(**options, asynchronous=asynchronous)


def _fsspec_store(url: str, options: dict[str, Any], path: str = "") -> Any:
    from zarr.storage import FsspecStore

    fs = _s3(options, asynchronous=True)
    root = url.removeprefix("s3://").rstrip("/")
    return FsspecStore(fs, path=f"{root}/{path}".rstrip("/"), read_only=True)


def walk_group(root: Any, clock: Clock, rows: list[Row]) -> None:
    """Enumerate a plate through zarr's group API (what a zarr user writes)."""
    plate = _ome(root.attrs.asdict())["plate"]
    for ref in plate["wells"]:
        well = root[ref["path"]]
        for image_ref in _ome(well.attrs.asdict())["well"]["images"]:
            clock.check()
            image = well[image_ref["path"]]
            dataset = _ome(image.attrs.asdict())["multiscales"][0]["datasets"][0]["path"]
            array = image[dataset]
            rows.append((f"{ref['path']}/{image_ref['path']}", array.shape, str(array.dtype)))


class RoundCounter:
    """Counts the concurrent rounds hcsfs asks its source for (as the budget tests do)."""

    def __init__(self, source: Any) -> None:
        self.rounds = 0
        self._depth = 0
        self._get_many = source.get_many
        self._get = source.get
        source.get_many = self.get_many
        source.get = self.get

    async def get_many(self, keys: Any) -> Any:
        self.rounds += 1
        self._depth += 1
        try:
            return await self._get_many(keys)
        finally:
            self._depth -= 1

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if self._depth == 0:
            self.rounds += 1
        return bytes(await self._get(key, start, end))


# ------------------------------------------------------------------------ tools
class Tool:
    """One way of opening and reading plates; subclasses fill in the ops."""

    name = ""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        """Open ``task["url"]`` and append every (field, shape, dtype) to ``rows``."""
        raise NotImplementedError(f"{self.name} has no open")

    def prepare(self, task: dict[str, Any]) -> None:
        """Open what reading ``task["nodes"]`` needs; keep it in ``self.state``."""
        raise NotImplementedError(f"{self.name} cannot read pixels")

    def read(self, task: dict[str, Any]) -> Iterator[np.ndarray]:
        """The level-0 pixels of each prepared node."""
        raise NotImplementedError(f"{self.name} cannot read pixels")


class Hcsfs(Tool):
    """``hcsfs.open_plate`` and its accessors (the documented walk)."""

    name = "hcsfs"

    def _open(self, task: dict[str, Any]) -> Any:
        import hcsfs
        from hcsfs.filesystem import HCSFileSystem

        fs = HCSFileSystem(
            fo=task["url"], target_options=task["options"], skip_instance_cache=True, mode="r"
        )
        counter = RoundCounter(fs.source)
        plate = hcsfs.Plate(fs)
        plate.meta  # noqa: B018 - what open_plate does
        return plate, counter

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        plate, counter = self._open(task)
        try:
            for path, well in plate.wells.items():
                for field, image in well.images.items():
                    clock.check()
                    rows.append((f"{path}/{field}", image.shape(0), str(image.dtype)))
        finally:
            self.extra["rounds"] = counter.rounds

    def prepare(self, task: dict[str, Any]) -> None:
        plate, _ = self._open(task)
        wells: dict[tuple[str, str], list[str]] = {}
        for node in task["nodes"]:
            row, column, field = node.split("/")
            wells.setdefault((row, column), []).append(field)
            plate.well(row, column).image(field).level(0)  # metadata read here, untimed
        self.state["wells"] = {key: (plate.well(*key), fields) for key, fields in wells.items()}
        self.state["plate"] = plate

    def read(self, task: dict[str, Any]) -> Iterator[np.ndarray]:
        # the documented reads: one field with Image.read, several of a well together
        for well, fields in self.state["wells"].values():
            if len(fields) == 1:
                yield well.image(fields[0]).read(0)
            else:
                yield from well.read(0, fields).values()


class HcsfsStore(Tool):
    """``zarr.open_group`` on ``HCSStore``, walked with zarr's group API."""

    name = "hcsfs-store"

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        import zarr

        from hcsfs.filesystem import HCSFileSystem
        from hcsfs.store import HCSStore

        fs = HCSFileSystem(fo=task["url"], target_options=task["options"], skip_instance_cache=True)
        walk_group(zarr.open_group(HCSStore(fs, "", read_only=True), mode="r"), clock, rows)


class Raw(Tool):
    """The raw limit: s3fs ``_cat_file`` of known keys, all in flight at once."""

    name = "raw"

    def prepare(self, task: dict[str, Any]) -> None:
        """Start a client (and its connection pool) to reuse, as the tools' reads do."""
        fs = _s3(task["options"])
        fs.cat_file(f"{task['url'].removeprefix('s3://').rstrip('/')}/{task['keys'][0]}")
        self.state["fs"] = fs

    def cat(self, task: dict[str, Any]) -> int:
        """Fetch every key of the task; return the bytes fetched.

        With a prepared client (B2) the reads reuse it; otherwise (B1, where every
        tool starts from nothing) a new client is made inside the measurement.
        """
        from fsspec.asyn import sync

        root = task["url"].removeprefix("s3://").rstrip("/")
        keys = [f"{root}/{k}" for k in task["keys"]]
        fs = self.state.get("fs") or _s3(task["options"])

        async def run() -> int:
            values = await asyncio.gather(*(fs._cat_file(k, max_concurrency=1) for k in keys))
            return sum(len(v) for v in values)

        return int(sync(fs.loop, run))


class Zarr(Tool):
    """Plain zarr-python on ``FsspecStore`` (s3fs, asynchronous)."""

    name = "zarr"

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        import zarr

        walk_group(
            zarr.open_group(_fsspec_store(task["url"], task["options"]), mode="r"), clock, rows
        )

    def prepare(self, task: dict[str, Any]) -> None:
        import zarr

        root = zarr.open_group(_fsspec_store(task["url"], task["options"]), mode="r")
        self.state["arrays"] = [root[f"{node}/0"] for node in task["nodes"]]

    def read(self, task: dict[str, Any]) -> Iterator[np.ndarray]:
        for array in self.state["arrays"]:
            yield np.asarray(array[...])


class Ngio(Tool):
    """ngio ``open_ome_zarr_plate`` on an ``FsspecStore``; ``get_images`` opens every field."""

    name = "ngio"

    def _plate(self, task: dict[str, Any]) -> Any:
        import ngio

        return ngio.open_ome_zarr_plate(_fsspec_store(task["url"], task["options"]), mode="r")

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        plate = self._plate(task)
        for path, container in plate.get_images(max_workers="auto").items():
            clock.check()
            image = container.get_image()
            rows.append((path, tuple(image.shape), str(image.dtype)))

    def prepare(self, task: dict[str, Any]) -> None:
        plate = self._plate(task)
        images = []
        for node in task["nodes"]:
            row, column, field = node.split("/")
            images.append(plate.get_image(row, column, field).get_image())
        self.state["images"] = images

    def read(self, task: dict[str, Any]) -> Iterator[np.ndarray]:
        for image in self.state["images"]:
            yield np.asarray(image.get_as_numpy())


class NgffZarr(Tool):
    """ngff-zarr ``from_hcs_zarr`` on an s3fs mapping; fields with ``from_ome_zarr``.

    ``HCSWell.get_image`` only takes local paths, obstore URLs or its zip store (obstore
    is not installed here), so each field is read as an image of its own.
    """

    name = "ngff-zarr"

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        import ngff_zarr as nz

        fs = _s3(task["options"])
        root = task["url"].removeprefix("s3://").rstrip("/")
        plate = nz.from_hcs_zarr(fs.get_mapper(root))
        for ref in plate.wells:
            row, column = ref.path.split("/")
            well = plate.get_well(row, column)
            for image_ref in well.images:
                clock.check()
                field = nz.from_ome_zarr(fs.get_mapper(f"{root}/{ref.path}/{image_ref.path}"))
                data = field.images[0].data
                rows.append((f"{ref.path}/{image_ref.path}", tuple(data.shape), str(data.dtype)))

    def prepare(self, task: dict[str, Any]) -> None:
        import ngff_zarr as nz

        fs = _s3(task["options"])
        root = task["url"].removeprefix("s3://").rstrip("/")
        self.state["data"] = [
            nz.from_ome_zarr(fs.get_mapper(f"{root}/{node}")).images[0].data
            for node in task["nodes"]
        ]

    def read(self, task: dict[str, Any]) -> Iterator[np.ndarray]:
        for data in self.state["data"]:
            yield np.asarray(data.compute())


class OmeZarrPy(Tool):
    """ome-zarr-py ``ZarrLocation`` on an ``FsspecStore``; ``Reader`` for the plate."""

    name = "ome-zarr-py"

    def _location(self, task: dict[str, Any], path: str = "") -> Any:
        from ome_zarr.format import FormatV04, FormatV05
        from ome_zarr.io import ZarrLocation

        fmt = FormatV05() if task["version"] == "0.5" else FormatV04()

        class Location(ZarrLocation):
            """Children stay on the same s3fs store (``create`` would rebuild from a URL)."""

            def create(self, sub: str) -> Location:
                store = self.store
                joined = f"{store.path}/{sub}".rstrip("/")
                return Location(type(store)(store.fs, path=joined, read_only=True), fmt=fmt)

        return Location(_fsspec_store(task["url"], task["options"], path), fmt=fmt)

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        from ome_zarr.reader import Reader

        location = self._location(task)
        nodes = list(Reader(location)())
        plate = _ome(nodes[0].zarr.root_attrs)["plate"]
        for ref in plate["wells"]:
            well = location.create(ref["path"])
            for image_ref in _ome(well.root_attrs)["well"]["images"]:
                clock.check()
                image = well.create(image_ref["path"])
                dataset = _ome(image.root_attrs)["multiscales"][0]["datasets"][0]["path"]
                data = image.load(dataset)
                rows.append(
                    (f"{ref['path']}/{image_ref['path']}", tuple(data.shape), str(data.dtype))
                )

    def prepare(self, task: dict[str, Any]) -> None:
        self.state["data"] = [self._location(task, node).load("0") for node in task["nodes"]]

    def read(self, task: dict[str, Any]) -> Iterator[np.ndarray]:
        for data in self.state["data"]:
            yield np.asarray(data.compute())


class OmeZarrModels(Tool):
    """ome-zarr-models ``HCS.from_zarr`` on a zarr group over ``FsspecStore``."""

    name = "ome-zarr-models"

    def open(self, task: dict[str, Any], clock: Clock, rows: list[Row]) -> None:
        import zarr

        group = zarr.open_group(_fsspec_store(task["url"], task["options"]), mode="r")
        if task["version"] == "0.5":
            from ome_zarr_models.v05.hcs import HCS
        else:
            from ome_zarr_models.v04.hcs import HCS
        hcs = HCS.from_zarr(group)
        plate = _ome(dict(group.attrs))["plate"]
        for index, ref in enumerate(plate["wells"]):
            well = hcs.get_well_group(index)
            for image_ref in _ome(_attrs(well))["well"]["images"]:
                clock.check()
                image = (well.members or {})[image_ref["path"]]
                dataset = _ome(_attrs(image))["multiscales"][0]["datasets"][0]["path"]
                array = (image.members or {})[dataset]
                dtype = getattr(array, "data_type", None) or getattr(array, "dtype", "")
                rows.append((f"{ref['path']}/{image_ref['path']}", tuple(array.shape), str(dtype)))


def _attrs(node: Any) -> dict[str, Any]:
    """A model node's attributes as plain JSON (parsed models and generic specs alike)."""
    attributes = node.attributes
    if isinstance(attributes, dict):
        return attributes
    return dict(attributes.model_dump(mode="json", by_alias=True, exclude_none=True))


class ZipS3(Tool):
    """zarr ``FsspecStore`` over fsspec's ``ZipFileSystem`` chained on s3 (``zip::s3://``)."""

    name = "zip-s3"


def ozx_open(tool: str, task: dict[str, Any], state: dict[str, Any]) -> Row:
    """Open an ``.ozx`` on S3 and the level-0 array of ``task["node"]``."""
    node = task["node"]
    if tool == "hcsfs":
        import hcsfs

        plate = hcsfs.open_plate(task["url"], storage_options=task["options"])
        row, column, field = node.split("/")
        array = plate.well(row, column).image(field).level(0)
        state["plate"] = plate
    else:
        import fsspec
        import zarr
        from zarr.storage import FsspecStore

        fs = fsspec.filesystem(
            "zip",
            fo=task["url"].removeprefix("s3://"),
            target_protocol="s3",
            target_options=task["options"],
        )
        store = FsspecStore(_async_wrap(fs), path="", read_only=True)
        array = zarr.open_group(store, mode="r")[f"{node}/0"]
    state["ozx_array"] = array
    return node, tuple(array.shape), str(array.dtype)


def _async_wrap(fs: Any) -> Any:
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    return AsyncFileSystemWrapper(fs)


# ------------------------------------------------------------------------ child loop
TOOL_CLASSES: dict[str, Callable[[], Tool]] = {
    cls.name: cls
    for cls in (Hcsfs, HcsfsStore, Raw, Zarr, Ngio, NgffZarr, OmeZarrPy, OmeZarrModels, ZipS3)
}


def _import_tool(name: str) -> None:
    """Import the tool's libraries now, so import time is never measured."""
    import s3fs  # noqa: F401
    import zarr  # noqa: F401

    import hcsfs  # noqa: F401

    if name == "ngio":
        import ngio  # noqa: F401
    elif name == "ngff-zarr":
        import ngff_zarr  # noqa: F401
    elif name == "ome-zarr-py":
        import ome_zarr.reader  # noqa: F401
    elif name == "ome-zarr-models":
        import ome_zarr_models.v04.hcs
        import ome_zarr_models.v05.hcs  # noqa: F401


def run_task(tool: Tool, task: dict[str, Any]) -> dict[str, Any]:
    """Run one task; return its result (wall time, what was found, errors)."""
    op = task["op"]
    clock = Clock(task.get("deadline"))
    rows: list[Row] = []
    tool.extra = {}
    out: dict[str, Any] = {"op": op}
    if op in ("open", "prepare", "ozx_open"):
        tool.state.clear()  # a new plate: the previous task's objects are not kept
    # Each task starts from a collected heap: the cyclic garbage a previous task left
    # (every fsspec filesystem sits in a reference cycle) is not charged to this one.
    gc.collect()
    start = time.perf_counter()
    try:
        if op == "open":
            tool.open(task, clock, rows)
        elif op == "prepare":
            tool.prepare(task)
        elif op == "read":
            arrays = list(tool.read(task))
            out["nbytes"] = sum(a.nbytes for a in arrays)
            out["checksum"] = sum(int(a.astype(np.uint64).sum()) for a in arrays)
        elif op == "cat":
            out["nbytes"] = tool.cat(task)  # type: ignore[attr-defined]
        elif op == "ozx_open":
            rows.append(ozx_open(tool.name, task, tool.state))
        elif op == "ozx_read":
            data = np.asarray(tool.state["ozx_array"][...])
            out["nbytes"] = data.nbytes
            out["checksum"] = int(data.astype(np.uint64).sum())
        else:
            raise ValueError(f"unknown op {op!r}")
        out["ok"] = True
    except Deadline:
        out["ok"] = False
        out["timed_out"] = True
    except Exception as exc:  # a peer failing is a result, not a crash
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out["wall_s"] = time.perf_counter() - start
    out.update(tool.extra)
    if rows or op == "open":
        out["fields"] = len(rows)
        out["shapes"] = sorted({f"{shape}/{dtype}" for _, shape, dtype in rows})
    return out


def main(argv: list[str]) -> int:
    """Child entry point: ``peers.py TOOL``; tasks on stdin, results on stdout."""
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)
    name = argv[1]
    _import_tool(name)
    tool = TOOL_CLASSES[name]()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(run_task(tool, json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
