"""Virtual consolidated metadata: serve a plate that has none as if it had.

When a plate lacks consolidated metadata, zarr and every tool on top of it read one
metadata document per node, one after another. :func:`virtual_root_document`
assembles the consolidated form once - one listing (where the storage can list) and
one concurrent round of GETs for exactly the documents that exist - so
``zarr.open_group(store, use_consolidated=True)`` and peers walking the plate make
no further request. The index drops it on any write through hcsfs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hcsfs.consolidated import (
    consolidated_v2,
    consolidated_v3_root,
    encode_document,
    metadata_keys,
)
from hcsfs.keys import join_key
from hcsfs.zarrmeta import V2_ARRAY, V2_ATTRS, V2_CONSOLIDATED, V2_GROUP, V3_DOC, load_json

if TYPE_CHECKING:
    from hcsfs.filesystem import HCSFileSystem

__all__ = ["VIRTUAL_KEYS", "virtual_root_document"]

#: The keys a virtual consolidated document answers, by zarr format.
VIRTUAL_KEYS = {3: V3_DOC, 2: V2_CONSOLIDATED}


async def virtual_root_document(fs: HCSFileSystem, key: str) -> bytes | None:
    """The consolidated root document for ``key``, or None when it is not served.

    Not served when the plate has real consolidated metadata, when ``key`` is not the
    root document of the plate's zarr format, or when the root is not a plate.
    """
    index = fs.index
    await index.open()
    if index.consolidated is not None or VIRTUAL_KEYS.get(index.zarr_format) != key:
        return None
    cached = index.virtual_root
    if cached is not None:
        return cached
    keys = await _document_keys(fs)
    found = await index.docs(keys)
    docs = {k: v for k, v in found.items() if v is not None}
    if index.zarr_format == 3:
        raw = index.cached_doc(V3_DOC)
        root = load_json(raw, path=V3_DOC) if raw is not None else {"zarr_format": 3}
        document = encode_document(consolidated_v3_root(root, docs))
    else:
        root_attrs = index.root_attributes
        docs.setdefault(V2_ATTRS, root_attrs)
        docs.setdefault(V2_GROUP, {"zarr_format": 2})
        document = encode_document(consolidated_v2(docs))
    index.virtual_root = document
    return document


async def _document_keys(fs: HCSFileSystem) -> list[str]:
    """Every metadata document of the plate: from a listing, or from the OME tree."""
    index = fs.index
    fmt = index.zarr_format
    if fs.source.can_list:
        files = [e["name"] for e in await fs.source.find("")]
        return [k for k in metadata_keys(files, fmt) if k not in (V3_DOC, V2_CONSOLIDATED)]
    return await _keys_from_metadata(fs)


async def _keys_from_metadata(fs: HCSFileSystem) -> list[str]:
    """Documents the OME metadata implies (for storage that cannot list, e.g. HTTP).

    Label groups are not declared by their image, so each image's ``labels`` group is
    looked up once (a missing one costs one failed GET).
    """
    index = fs.index
    fmt = index.zarr_format
    plate = index.plate_meta
    group_names = (V3_DOC,) if fmt == 3 else (V2_GROUP, V2_ATTRS)
    array_names = (V3_DOC,) if fmt == 3 else (V2_ARRAY, V2_ATTRS)
    keys: list[str] = [] if fmt == 3 else [V2_GROUP]
    rows = sorted({w.path.split("/")[0] for w in plate.wells})
    for row in rows:
        keys += [join_key(row, n) for n in group_names]
    wells = await index.wells([w.path for w in plate.wells])
    images = [join_key(p, img.path) for p, w in wells.items() for img in w.images]
    for node in [*wells, *images]:
        keys += [join_key(node, n) for n in group_names]
    image_meta = await index.images(images)
    label_groups = {node: join_key(node, "labels") for node in images}
    found_labels = await asyncio.gather(*(index.labels(node) for node in images))
    labels = dict(zip(images, found_labels, strict=True))
    label_images: dict[str, Any] = {}
    for node, labels_meta in labels.items():
        if labels_meta is None:
            continue
        keys += [join_key(label_groups[node], n) for n in group_names]
        for name in labels_meta.names:
            label_images[join_key(label_groups[node], name)] = None
    label_meta = await index.images(list(label_images))
    for node, meta in [*image_meta.items(), *label_meta.items()]:
        for dataset in meta.datasets:
            keys += [join_key(node, dataset.path, n) for n in array_names]
        keys += [join_key(node, n) for n in group_names] if node in label_images else []
    return list(dict.fromkeys(keys))
