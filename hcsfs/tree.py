"""The plate as a tree of nodes, derived from OME metadata (no listing needed).

plate root → rows → wells → fields (images) → arrays (datasets), and per image a
``labels`` group → label images → their arrays. Anything below an array, or not in
the OME hierarchy (``tables/`` ...), is left to the source's own listing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hcsfs.errors import MetadataError
from hcsfs.index import PlateIndex
from hcsfs.keys import join_key
from hcsfs.ome.model import PlateMeta
from hcsfs.zarrmeta import V2_ARRAY, V2_ATTRS, V2_GROUP, V3_DOC

__all__ = ["Node", "PlateTree"]


@dataclass(frozen=True)
class Node:
    """A node of the plate tree: its kind and the names of its OME children."""

    key: str
    kind: str  # "plate" | "row" | "well" | "image" | "labels" | "array" | "dir"
    children: tuple[str, ...] = ()


class PlateTree:
    """Classifies plate keys and lists OME children, using only the index."""

    def __init__(self, index: PlateIndex) -> None:
        self.index = index
        #: Why the root is not a plate (empty storage, plain zarr data ...), once known.
        self.root_error: MetadataError | None = None

    async def plate(self) -> PlateMeta | None:
        """The plate metadata, or ``None`` when the root is not a (readable) plate.

        A root that is not a plate - empty storage, plain zarr data, a bad root
        document - has no OME nodes: the filesystem then serves the storage as it is.
        The verdict is kept (in :attr:`root_error`) until :meth:`invalidate`, so plain
        storage does not re-read the root on every call.
        """
        if self.root_error is not None:
            return None
        try:
            return await self.index.open()
        except MetadataError as exc:
            self.root_error = exc
            return None

    def invalidate(self, key: str | None = None) -> None:
        """Forget the root verdict when ``key`` (a written key) may change it, or always."""
        if key is None or "/" not in key:
            self.root_error = None

    def group_docs(self, key: str) -> tuple[str, ...]:
        """Metadata files a group at ``key`` has (by the format's rules)."""
        if self.index.zarr_format == 3:
            return (join_key(key, V3_DOC),)
        return (join_key(key, V2_ATTRS), join_key(key, V2_GROUP))

    def array_docs(self, key: str) -> tuple[str, ...]:
        """Metadata files an array at ``key`` has for sure."""
        if self.index.zarr_format == 3:
            return (join_key(key, V3_DOC),)
        return (join_key(key, V2_ARRAY),)

    async def node(self, key: str) -> Node | None:
        """The OME node at ``key``, or ``None`` when the metadata does not define it.

        Always ``None`` when the root is not a plate (see :meth:`plate`).
        """
        plate = await self.plate()
        if plate is None:
            return None
        if key == "":
            rows = sorted({w.path.split("/")[0] for w in plate.wells}, key=_row_order(plate.rows))
            return Node("", "plate", tuple(rows))
        parts = key.split("/")
        wells = {w.path: w for w in plate.wells}
        if len(parts) == 1:
            columns = [w.path.split("/")[1] for w in plate.wells if w.path.split("/")[0] == key]
            return Node(key, "row", tuple(columns)) if columns else None
        well_key = "/".join(parts[:2])
        if well_key not in wells:
            return None
        if len(parts) == 2:
            well = await self.index.well(well_key)
            return Node(key, "well", tuple(img.path for img in well.images))
        well = await self.index.well(well_key)
        if parts[2] not in {img.path for img in well.images}:
            return None
        return await self._image_subtree(join_key(well_key, parts[2]), parts[3:])

    async def _image_subtree(self, image_key: str, rest: list[str]) -> Node | None:
        image = await self.index.image(image_key)
        if not rest:
            children = list(dict.fromkeys(d.path.split("/")[0] for d in image.datasets))
            labels = await self.index.labels(image_key) if not image.is_label else None
            if labels is not None:
                children.append("labels")
            return Node(image_key, "image", tuple(children))
        dataset_paths = [d.path for d in image.datasets]
        sub = "/".join(rest)
        if sub in dataset_paths:
            return Node(join_key(image_key, sub), "array")
        if any(p.startswith(sub + "/") for p in dataset_paths):
            nested = {
                p[len(sub) + 1 :].split("/")[0] for p in dataset_paths if p.startswith(sub + "/")
            }
            return Node(join_key(image_key, sub), "dir", tuple(sorted(nested)))
        if rest[0] == "labels" and not image.is_label:
            labels = await self.index.labels(image_key)
            if labels is None:
                return None
            labels_key = join_key(image_key, "labels")
            if len(rest) == 1:
                return Node(labels_key, "labels", labels.names)
            if rest[1] not in labels.names:
                return None
            return await self._image_subtree(join_key(labels_key, rest[1]), rest[2:])
        return None


def _row_order(rows: tuple[str, ...]) -> Callable[[str], tuple[int, str]]:
    order = {name: i for i, name in enumerate(rows)}
    return lambda name: (order.get(name, len(order)), name)
