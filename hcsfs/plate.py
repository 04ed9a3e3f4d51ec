"""Plate, Well and Image: the user-facing accessors, and :func:`open_plate`.

Accessors are lazy: creating one costs nothing; metadata is fetched on first use.
Walking a plate (``plate.wells.values()`` / ``items()``, then ``well.images``) reads
ahead one hierarchy level at a time for a window of wells (the well cache size), so
enumerating a whole plate costs one concurrent round per level instead of one
request after another.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import numpy as np
from fsspec.asyn import sync
from fsspec.utils import tokenize

from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.index import DEFAULT_IMAGE_CACHE_SIZE, DEFAULT_WELL_CACHE_SIZE
from hcsfs.keys import join_key
from hcsfs.ome.model import Acquisition, Axis, ImageMeta, PlateMeta, WellMeta, WellRef
from hcsfs.resolve import is_archive_path, split_hcs_url
from hcsfs.store import HCSStore
from hcsfs.zarrmeta import ArrayMeta, attributes_doc_key

if TYPE_CHECKING:
    import dask.array
    import zarr

__all__ = ["Image", "Plate", "PlateArray", "Well", "open_plate"]


def open_plate(
    url: str,
    *,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
    well_cache_size: int = DEFAULT_WELL_CACHE_SIZE,
    image_cache_size: int = DEFAULT_IMAGE_CACHE_SIZE,
) -> Plate:
    """Open the OME-Zarr HCS plate at ``url``.

    Parameters
    ----------
    url
        A local path, ``s3://bucket/plate.ome.zarr``, an ``.ozx`` archive (local or
        remote), or a chained URL (``hcs::s3://...``).
    mode
        ``"r"`` (read-only, default), ``"r+"`` or ``"a"`` to allow writes. A writable
        ``.ozx`` is unpacked into a staging directory and packed again on ``close()``.
    storage_options
        Options for the target filesystem (e.g. ``{"endpoint_url": ..., "anon": True}``).
    well_cache_size, image_cache_size
        Bounds of the metadata caches: wells, and images per well.

    Returns
    -------
    Plate
        The opened plate; its root metadata has been read and checked.
    """
    if mode != "r" and is_archive_path(split_hcs_url(str(url))):
        from hcsfs.write import open_staged_plate

        return open_staged_plate(
            split_hcs_url(str(url)),
            mode=mode,
            storage_options=storage_options,
            well_cache_size=well_cache_size,
            image_cache_size=image_cache_size,
        )
    fs = HCSFileSystem(
        fo=split_hcs_url(str(url)),
        target_options=storage_options or None,
        mode=mode,
        well_cache_size=well_cache_size,
        image_cache_size=image_cache_size,
        skip_instance_cache=True,
    )
    plate = Plate(fs)
    plate.meta  # noqa: B018 - reads and validates the root now, so errors surface here
    return plate


class Plate:
    """An OME-Zarr HCS plate."""

    def __init__(self, fs: HCSFileSystem) -> None:
        self.fs = fs
        self.index = fs.index
        self._walk_order: list[str] | None = None
        self._positions: dict[str, int] | None = None
        self._done: set[tuple[str, str, int, int]] = set()
        self._memo_generation = -1
        self._closed = False
        self._staged: Any = None  # a staged .ozx (hcsfs.write.staging), packed on close

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the filesystem (by its arguments); a staged .ozx is not packed twice."""
        return (Plate, (self.fs,))

    def _sync(self, coro: Any) -> Any:
        return sync(self.fs.loop, lambda: coro)

    def __repr__(self) -> str:
        meta = self.meta
        return (
            f"<Plate {meta.name or ''!r} {len(meta.rows)}x{len(meta.columns)} "
            f"wells={len(meta.wells)} version={meta.version} at {self.fs.url}>"
        )

    @property
    def meta(self) -> PlateMeta:
        """The parsed plate metadata."""
        known = self.index.known_plate()
        return known if known is not None else self._sync(self.index.open())

    @property
    def url(self) -> str:
        """Where the plate lives."""
        return self.fs.url

    @property
    def name(self) -> str | None:
        """The plate name, if the metadata gives one."""
        return self.meta.name

    @property
    def version(self) -> str:
        """The OME-Zarr version of the plate."""
        return self.meta.version

    @property
    def rows(self) -> tuple[str, ...]:
        """Row names in order."""
        return self.meta.rows

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in order."""
        return self.meta.columns

    @property
    def acquisitions(self) -> tuple[Acquisition, ...]:
        """The acquisitions the plate declares."""
        return self.meta.acquisitions

    @property
    def field_count(self) -> int | None:
        """The maximum number of fields per well, if declared."""
        return self.meta.field_count

    @property
    def zarr_format(self) -> int:
        """2 for OME-Zarr up to 0.4, 3 from 0.5."""
        self.meta  # noqa: B018
        return self.index.zarr_format

    @property
    def wells(self) -> WellsView:
        """Mapping ``"A/1"`` → :class:`Well` of every well the plate declares."""
        return WellsView(self)

    def well(self, row: str, column: str | int) -> Well:
        """The well at ``row``/``column`` (column as int or str)."""
        path = f"{row}/{column}"
        refs = {w.path: w for w in self.meta.wells}
        if path not in refs:
            by_names = [w for w in self.meta.wells if w.row == str(row) and w.column == str(column)]
            if not by_names:
                raise KeyError(
                    f"no well {path!r} in plate {self.url}; wells: {_preview(sorted(refs))}"
                )
            return Well(self, by_names[0])
        return Well(self, refs[path])

    @property
    def store(self) -> HCSStore:
        """A zarr store rooted at the plate."""
        return HCSStore(self.fs, "", read_only=self.fs.read_only)

    @property
    def zarr(self) -> zarr.Group:
        """The plate as a ``zarr.Group``."""
        import zarr

        return zarr.open_group(
            self.store,
            mode="r" if self.fs.read_only else "r+",
            zarr_format=self.zarr_format,  # type: ignore[arg-type]
        )

    # ---------------------------------------------------------------- dask
    @overload
    def to_dask(
        self,
        level: int = 0,
        fields: Sequence[int | str] | None = None,
        wells: Sequence[str] | None = None,
        *,
        with_index: Literal[False] = False,
    ) -> dask.array.Array: ...

    @overload
    def to_dask(
        self,
        level: int = 0,
        fields: Sequence[int | str] | None = None,
        wells: Sequence[str] | None = None,
        *,
        with_index: Literal[True],
    ) -> PlateArray: ...

    def to_dask(
        self,
        level: int = 0,
        fields: Sequence[int | str] | None = None,
        wells: Sequence[str] | None = None,
        *,
        with_index: bool = False,
    ) -> dask.array.Array | PlateArray:
        """The plate (or a selection of it) as one lazy dask array.

        The array has dimensions ``(well, field, *image axes)``: block ``[i, j]`` is
        resolution ``level`` of field ``fields[j]`` of well ``wells[i]``, chunked as
        it is stored. Building it reads metadata only - one concurrent round per
        hierarchy level (wells, images, arrays) for a window of up to
        ``well_cache_size`` wells - and never a chunk; chunks are read when the array
        is computed, by whichever process computes it (the graph holds the pickled
        plate filesystem, a few hundred bytes, not cached data).

        Parameters
        ----------
        level
            The resolution level (``0`` is full resolution; negative counts from the
            coarsest).
        fields
            The fields to take from every well, as paths (``"0"``) or ints, in the
            order wanted. Default: the fields of the selected wells, which must then
            list the same fields (else :class:`~hcsfs.errors.HCSError` names the
            wells that differ).
        wells
            The wells to take, as ``"A/1"`` paths, in the order wanted. Default:
            every well the plate declares whose group exists, in plate order.
        with_index
            Return a :class:`PlateArray` ``(array, wells, fields, dims)`` that labels
            the first two dimensions, instead of the bare array.

        Returns
        -------
        dask.array.Array or PlateArray
            The lazy array; with ``with_index=True`` together with the well paths and
            field paths along its first two dimensions and the dimension names
            (``("well", "field", "t", "c", "z", "y", "x")``).

        Raises
        ------
        KeyError
            A requested well is not in the plate, or a requested field is missing
            from some selected well (the message lists them).
        hcsfs.errors.HCSError
            The selected images disagree in shape, dtype or axes at ``level``, lack
            that level, or (``fields=None``) the wells list different fields. The
            message names the odd ones out, e.g. ``"A/2/1 has shape (1, 2, 1, 32,
            32); most fields have (1, 2, 1, 64, 64)"``.
        ValueError
            The selection is empty.

        Examples
        --------
        >>> data = plate.to_dask(1)  # doctest: +SKIP
        >>> per_well_mean = data.mean(axis=tuple(range(1, data.ndim))).compute()  # doctest: +SKIP
        >>> data, wells, fields, dims = plate.to_dask(wells=["A/1", "B/3"], with_index=True)
        ... # doctest: +SKIP
        """
        import dask.array as da

        well_paths = self._select_wells(wells)
        wanted = None if fields is None else [str(f) for f in fields]
        if wanted is not None and not wanted:
            raise ValueError(f"plate {self.url}: no fields selected (fields=[])")
        found = self._sync(self._gather_level(well_paths, wanted, level, wells is None))
        if wells is None:  # the declared wells that exist (as hcsfs info counts them)
            well_paths = list(found)
            if not well_paths:
                raise ValueError(f"plate {self.url}: none of its declared wells is present")
        field_paths = wanted if wanted is not None else _common_fields(found, self.url)
        shape, dtype, axes = _agreed_layout(found, level, self.url)
        read_only = self.fs.read_only
        salt = "" if read_only else uuid.uuid4().hex  # a writable plate may change
        rows = []
        for well_path in well_paths:
            blocks = []
            for field_path in field_paths:
                node, chunks = found[well_path][field_path][1:3]
                proxy = _LazyLevel(self.fs, node, self.index.zarr_format, shape, dtype)
                name = "hcsfs-" + tokenize(self.fs._identity, node, shape, dtype, chunks, salt)
                blocks.append(
                    da.from_array(
                        proxy,
                        chunks=chunks,
                        name=name,
                        asarray=False,
                        fancy=False,
                        meta=np.empty((0,) * len(shape), dtype=dtype),
                    )
                )
            rows.append(da.stack(blocks))
        array = da.stack(rows)
        if not with_index:
            return array
        return PlateArray(array, list(well_paths), list(field_paths), ("well", "field", *axes))

    def _select_wells(self, wells: Sequence[str] | None) -> list[str]:
        declared = [w.path for w in self.meta.wells]
        if wells is None:
            if not declared:
                raise ValueError(f"plate {self.url} declares no wells")
            return declared
        if isinstance(wells, str):
            raise TypeError(f"wells must be a list of well paths, not the string {wells!r}")
        chosen = [getattr(w, "path", w) for w in wells]
        if not chosen:
            raise ValueError(f"plate {self.url}: no wells selected (wells=[])")
        known = set(declared)
        unknown = [w for w in chosen if w not in known]
        if unknown:
            raise KeyError(
                f"no well {_preview(unknown)} in plate {self.url}; wells: {_preview(declared)}"
            )
        return chosen

    async def _present_wells(self, well_paths: list[str]) -> list[str]:
        """The wells of ``well_paths`` whose group exists (one round for all)."""
        index = self.index
        await index.open()
        keys = {attributes_doc_key(index.zarr_format, p): p for p in well_paths}
        docs = await index.docs(keys)
        return [keys[key] for key, doc in docs.items() if doc is not None]

    async def _gather_level(
        self, well_paths: list[str], fields: list[str] | None, level: int, skip_absent: bool
    ) -> dict[str, dict[str, tuple[ImageMeta, str, tuple[int, ...], ArrayMeta]]]:
        """Image and array metadata of ``level`` for the wells' fields, a window a round.

        Returns well → field → (image meta, array node, chunks, array meta), fields in
        the well's own order (or the order of ``fields``). With ``skip_absent``, wells
        the plate declares but whose group does not exist are left out (same round).
        """
        index = self.index
        await index.open()
        out: dict[str, dict[str, tuple[ImageMeta, str, tuple[int, ...], ArrayMeta]]] = {}
        unique = list(dict.fromkeys(well_paths))
        size = index.well_cache_size
        missing: dict[str, list[str]] = {}
        no_level: list[str] = []
        for start in range(0, len(unique), size):
            window = unique[start : start + size]
            if skip_absent:
                window = await self._present_wells(window)
            well_metas = await index.wells(window)  # from the documents just read
            listed: dict[str, list[str]] = {}
            for path in window:
                own = [img.path for img in well_metas[path].images]
                if fields is None:
                    listed[path] = own
                else:
                    absent = [f for f in fields if f not in own]
                    if absent:
                        missing.setdefault(", ".join(absent), []).append(path)
                    listed[path] = [f for f in fields if f in own]
            nodes = [join_key(p, f) for p, fs in listed.items() for f in fs]
            images = await index.images(nodes)
            arrays: dict[str, str] = {}
            for node, meta in images.items():
                if -len(meta.datasets) <= level < len(meta.datasets):
                    arrays[node] = join_key(node, meta.datasets[level].path)
                else:
                    no_level.append(f"{node} ({len(meta.datasets)} levels)")
            if missing or no_level:
                continue  # report below, after every window was checked
            array_metas = await index.arrays(arrays.values())
            for path, fs in listed.items():
                out[path] = {}
                for f in fs:
                    node = join_key(path, f)
                    array_meta = array_metas[arrays[node]]
                    out[path][f] = (images[node], arrays[node], array_meta.chunks, array_meta)
        if missing:
            detail = "; ".join(f"{fs} missing from {_preview(ws)}" for fs, ws in missing.items())
            raise KeyError(f"plate {self.url}: fields {detail}")
        if no_level:
            raise HCSError(f"plate {self.url}: no level {level} in {_preview(no_level)}")
        return out

    # ------------------------------------------------------------- writing
    def write_image(
        self, row: str, column: str | int, field: int | str, data: Any, **kwargs: Any
    ) -> Image:
        """Write a field (with its pyramid) into a well; see :func:`hcsfs.write.write_image`."""
        from hcsfs.write import write_image

        return write_image(self, row, column, field, data, **kwargs)

    def remove_well(self, row: str, column: str | int) -> None:
        """Remove a well, metadata first; see :func:`hcsfs.write.remove_well`."""
        from hcsfs.write import remove_well

        remove_well(self, row, column)

    def consolidate(self) -> None:
        """Write consolidated metadata for the current hierarchy (plate open for writing)."""
        from hcsfs.write import consolidate_plate

        consolidate_plate(self)

    def close(self, *, abort: bool = False) -> None:
        """Finish the plate and drop cached metadata.

        A writable plate gets fresh consolidated metadata (a staged ``.ozx`` is packed
        instead, or abandoned with ``abort=True``) and refuses further writes. A
        read-only plate can still be used; it re-reads on demand.
        """
        from hcsfs.write import close_plate

        close_plate(self, abort=abort)

    def __enter__(self) -> Plate:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)

    # ---------------------------------------------------------- read-ahead
    def _window(self, well_path: str) -> list[str]:
        """The read-ahead window of wells ``well_path`` falls in (cache-sized, in order)."""
        order = self._walk_order or [w.path for w in self.meta.wells]
        if self._positions is None or len(self._positions) != len(order):
            self._positions = {path: i for i, path in enumerate(order)}
        pos = self._positions.get(well_path)
        if pos is None:
            return [well_path]
        size = self.index.well_cache_size
        start = (pos // size) * size
        return order[start : start + size]

    def _first_time(self, kind: str, window: list[str], level: int = 0) -> bool:
        """True once per (kind, window, level) until the index is invalidated.

        Read-ahead of a window happens once; without this memo every accessor call
        would re-check the whole window (thousands of cache lookups per call).
        """
        if self._memo_generation != self.index.generation:
            self._done.clear()
            self._memo_generation = self.index.generation
        key = (kind, window[0] if window else "", len(window), level)
        if key in self._done:
            return False
        self._done.add(key)
        return True

    def _read_ahead(self, kind: str, well_paths: list[str], level: int = 0) -> None:
        """Read the window's images (or level-``level`` arrays) ahead, once per window.

        The once-check runs here, before any hop to the event loop, so accessor calls
        after the first cost no loop round trip.
        """
        if not self._first_time(kind, well_paths, level):
            return
        if kind == "images":
            self._sync(self._prefetch_images(well_paths))
        else:
            self._sync(self._prefetch_arrays(well_paths, level))

    async def _prefetch_images(self, well_paths: list[str]) -> None:
        wells = await self.index.wells(well_paths)
        nodes = [join_key(p, img.path) for p, w in wells.items() for img in w.images]
        await self.index.images(nodes)

    async def _prefetch_arrays(self, well_paths: list[str], level: int) -> None:
        if self._first_time("images", well_paths):
            await self._prefetch_images(well_paths)
        wells = await self.index.wells(well_paths)
        nodes = [join_key(p, img.path) for p, w in wells.items() for img in w.images]
        images = await self.index.images(nodes)
        arrays = [
            join_key(node, meta.datasets[level].path)
            for node, meta in images.items()
            if level < len(meta.datasets)
        ]
        await self.index.arrays(arrays)


class WellsView(Mapping[str, "Well"]):
    """The plate's wells by path; iterating values/items reads ahead level by level."""

    def __init__(self, plate: Plate) -> None:
        self._plate = plate
        self._refs = {w.path: w for w in plate.meta.wells}

    def __getitem__(self, path: str) -> Well:
        if path not in self._refs:
            raise KeyError(
                f"no well {path!r} in plate {self._plate.url}; wells: {_preview(list(self._refs))}"
            )
        return Well(self._plate, self._refs[path])

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def values(self) -> Iterator[Well]:  # type: ignore[override]
        """Every well, reading ahead."""
        self._plate._walk_order = list(self._refs)
        self._plate._positions = None
        for ref in self._refs.values():
            yield Well(self._plate, ref, walking=True)

    def items(self) -> Iterator[tuple[str, Well]]:  # type: ignore[override]
        """``(path, well)`` pairs, reading ahead."""
        for well in self.values():
            yield well.path, well


class Well:
    """One well of a plate."""

    def __init__(self, plate: Plate, ref: WellRef, *, walking: bool = False) -> None:
        self.plate = plate
        self.ref = ref
        self.path = ref.path
        self.row = ref.row
        self.column = ref.column
        self._walking = walking

    def __repr__(self) -> str:
        return f"<Well {self.path}>"

    @property
    def meta(self) -> WellMeta:
        """The parsed well metadata."""
        index = self.plate.index
        if self._walking:
            window = self.plate._window(self.path)
            if self.plate._first_time("wells", window):
                self.plate._sync(index.wells(window))
        known = index.known_well(self.path)
        return known if known is not None else self.plate._sync(index.well(self.path))

    @property
    def images(self) -> ImagesView:
        """Mapping field path (``"0"``) → :class:`Image`."""
        if self._walking:
            self.plate._read_ahead("images", self.plate._window(self.path))
        return ImagesView(self)

    def image(self, field: int | str = 0) -> Image:
        """The field ``field`` of this well."""
        return self.images[str(field)]

    def read(
        self, level: int = 0, fields: Iterable[int | str] | None = None
    ) -> dict[str, np.ndarray]:
        """The pixels of every field (or of ``fields``) at ``level``, read together.

        The fields' chunk reads are all in flight at once, so a well costs about what
        its largest field costs, not the sum of its fields. Keys are field paths.
        """
        from hcsfs.bulkread import read_selections

        names = [str(f) for f in fields] if fields is not None else list(self.images)
        images = [self.image(name) for name in names]
        requests = [(image._dataset(level), image.level(level), ...) for image in images]
        values = read_selections(self.plate.fs, requests)
        return dict(zip(names, values, strict=True))

    def write_image(self, field: int | str, data: Any, **kwargs: Any) -> Image:
        """Write a field into this well; see :func:`hcsfs.write.write_image`."""
        return self.plate.write_image(self.row, self.column, field, data, **kwargs)

    def remove_image(self, field: int | str) -> None:
        """Remove a field, metadata first (the last one removes the well)."""
        from hcsfs.write import remove_image

        remove_image(self, field)

    @property
    def store(self) -> HCSStore:
        """A zarr store rooted at this well."""
        return HCSStore(self.plate.fs, self.path, read_only=self.plate.fs.read_only)


class ImagesView(Mapping[str, "Image"]):
    """A well's fields by path."""

    def __init__(self, well: Well) -> None:
        self._well = well
        self._refs = {img.path: img.acquisition for img in well.meta.images}

    def __getitem__(self, path: str) -> Image:
        if path not in self._refs:
            raise KeyError(
                f"no field {path!r} in well {self._well.path}; fields: {_preview(list(self._refs))}"
            )
        return Image(self._well, path, self._refs[path], walking=self._well._walking)

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


class Image:
    """One field of view (an OME-Zarr multiscale image) of a well."""

    def __init__(
        self, well: Well, path: str, acquisition: int | None = None, *, walking: bool = False
    ) -> None:
        self.well = well
        self.plate = well.plate
        self.path = join_key(well.path, path)
        self.field = path
        self.acquisition = acquisition
        self._walking = walking

    def __repr__(self) -> str:
        return f"<Image {self.path}>"

    @property
    def meta(self) -> ImageMeta:
        """The parsed multiscales/omero metadata."""
        index = self.plate.index
        known = index.known_image(self.path)
        return known if known is not None else self.plate._sync(index.image(self.path))

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The image axes."""
        return self.meta.axes

    @property
    def axis_names(self) -> tuple[str, ...]:
        """The axis names, e.g. ``("t", "c", "z", "y", "x")``."""
        return self.meta.axis_names

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channel labels from omero metadata."""
        return self.meta.channel_names

    @property
    def name(self) -> str | None:
        """The multiscale's name."""
        return self.meta.name

    @property
    def levels(self) -> int:
        """Number of resolution levels."""
        return len(self.meta.datasets)

    def _dataset(self, level: int) -> str:
        datasets = self.meta.datasets
        if not -len(datasets) <= level < len(datasets):
            raise KeyError(f"{self.path} has {len(datasets)} levels; no level {level}")
        return join_key(self.path, datasets[level].path)

    def scale(self, level: int = 0) -> tuple[float, ...]:
        """Physical scale per axis at ``level``."""
        self._dataset(level)
        return self.meta.datasets[level].scale

    def translation(self, level: int = 0) -> tuple[float, ...] | None:
        """Physical translation per axis at ``level``, if any."""
        self._dataset(level)
        return self.meta.datasets[level].translation

    def array_meta(self, level: int = 0) -> ArrayMeta:
        """Shape, dtype and chunks of ``level`` (from metadata, no chunk read)."""
        node = self._dataset(level)
        if self._walking:
            self.plate._read_ahead("arrays", self.plate._window(self.well.path), level)
        index = self.plate.index
        known = index.known_array(node)
        return known if known is not None else self.plate._sync(index.array(node))

    def shape(self, level: int = 0) -> tuple[int, ...]:
        """The array shape at ``level``."""
        return self.array_meta(level).shape

    @property
    def dtype(self) -> str:
        """The level-0 data type."""
        return self.array_meta(0).dtype

    def level(self, level: int = 0) -> zarr.Array:
        """The resolution level as a zarr array (read-only when the plate is)."""
        import zarr

        node = self._dataset(level)
        self.array_meta(level)
        return zarr.open_array(
            HCSStore(self.plate.fs, node, read_only=self.plate.fs.read_only),
            mode="r" if self.plate.fs.read_only else "r+",
            zarr_format=self.plate.index.zarr_format,  # type: ignore[arg-type]
        )

    def read(self, level: int = 0, selection: Any = ...) -> np.ndarray:
        """The pixels of ``level`` (all of them, or a ``selection``) as numpy.

        Every chunk a basic selection touches is fetched at once, not zarr's few at
        a time (see :mod:`hcsfs.bulkread`).
        """
        from hcsfs.bulkread import read_selections

        requests = [(self._dataset(level), self.level(level), selection)]
        return read_selections(self.plate.fs, requests)[0]

    def to_dask(self, level: int = 0) -> dask.array.Array:
        """The resolution level as a lazy dask array."""
        import dask.array as da

        return da.from_zarr(self.level(level))

    @property
    def labels(self) -> tuple[str, ...]:
        """Names of the label images of this field (one lookup, then cached)."""
        meta = self.plate._sync(self.plate.index.labels(self.path))
        return meta.names if meta is not None else ()

    @property
    def store(self) -> HCSStore:
        """A zarr store rooted at this image."""
        return HCSStore(self.plate.fs, self.path, read_only=self.plate.fs.read_only)


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown or "(none)"


class PlateArray(NamedTuple):
    """A plate as one dask array, with what its first two dimensions hold.

    Returned by ``plate.to_dask(..., with_index=True)``; unpacks as
    ``array, wells, fields, dims = ...``.
    """

    array: dask.array.Array
    """The lazy data, dimensions ``dims``."""
    wells: list[str]
    """The well path (``"A/1"``) of each index along dimension 0."""
    fields: list[str]
    """The field path (``"0"``) of each index along dimension 1."""
    dims: tuple[str, ...]
    """Dimension names: ``("well", "field", *image axes)``."""


class _LazyLevel:
    """A stand-in for one level's zarr array that opens it on first read.

    It is what each block of :meth:`Plate.to_dask` reads from: building the graph
    opens no zarr array, and pickling ships the filesystem (by its arguments), the
    node, the format and the layout - never an opened array or cached metadata.
    """

    def __init__(
        self,
        fs: HCSFileSystem,
        node: str,
        zarr_format: int,
        shape: tuple[int, ...],
        dtype: str,
    ) -> None:
        self.fs = fs
        self.node = node
        self.zarr_format = zarr_format
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)
        self._array: zarr.Array | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _LazyLevel,
            (self.fs, self.node, self.zarr_format, self.shape, self.dtype.str),
        )

    def __repr__(self) -> str:
        return f"<level {self.node} {self.shape} {self.dtype} of {self.fs.fo}>"

    def _open(self) -> zarr.Array:
        with self._lock:
            if self._array is None:
                import zarr

                self._array = zarr.open_array(
                    HCSStore(self.fs, self.node, read_only=True),
                    mode="r",
                    zarr_format=self.zarr_format,  # type: ignore[arg-type]
                )
            return self._array

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._open()[key])


def _common_fields(found: Mapping[str, Mapping[str, Any]], url: str, limit: int = 6) -> list[str]:
    """The fields every well lists (in that order), or an error naming the odd wells."""
    lists = {well: tuple(fields) for well, fields in found.items()}
    usual, _ = Counter(lists.values()).most_common(1)[0]
    odd = [w for w, fields in lists.items() if fields != usual]
    if odd:
        shown = "; ".join(f"{w} has fields {list(lists[w])}" for w in odd[:limit])
        more = f" (and {len(odd) - limit} more wells)" if len(odd) > limit else ""
        raise HCSError(
            f"plate {url}: wells list different fields: {shown}{more}; most wells have "
            f"{list(usual)}. Pass fields=[...] to choose the fields to stack."
        )
    return list(usual)


def _agreed_layout(
    found: Mapping[str, Mapping[str, tuple[ImageMeta, str, tuple[int, ...], ArrayMeta]]],
    level: int,
    url: str,
    limit: int = 6,
) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    """The shape, dtype and axes every selected image has at ``level``, or an error."""
    entries = [
        (join_key(well, field), image.axis_names, array.shape, array.dtype)
        for well, fields in found.items()
        for field, (image, _, _, array) in fields.items()
    ]
    for what, pos in (("axes", 1), ("shape", 2), ("dtype", 3)):
        values: list[Any] = [entry[pos] for entry in entries]
        usual = Counter(values).most_common(1)[0][0]
        odd = [entry for entry in entries if entry[pos] != usual]
        if odd:
            shown = "; ".join(f"{e[0]} has {what} {_show(e[pos])}" for e in odd[:limit])
            more = f" (and {len(odd) - limit} more)" if len(odd) > limit else ""
            raise HCSError(
                f"plate {url}: the fields at level {level} do not stack: {shown}{more}; "
                f"most fields have {_show(usual)}. Choose matching ones with wells=/fields=."
            )
    _, axes, shape, dtype = entries[0]
    return shape, dtype, axes


def _show(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return "".join(value) if all(len(v) == 1 for v in value) else repr(value)
    return str(value)
