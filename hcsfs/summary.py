"""A plate's summary (``hcsfs info``): what a person wants to see at a glance.

Built with one concurrent round per hierarchy level (wells, then images, then the
level-0 arrays of one field), so it stays cheap on object storage.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fsspec.asyn import sync

from hcsfs.keys import join_key
from hcsfs.plate import Plate
from hcsfs.source import LocalSource
from hcsfs.zarrmeta import attributes_doc_key

__all__ = ["format_summary", "plate_summary"]


async def _summary(plate: Plate, with_size: bool) -> dict[str, Any]:
    index = plate.index
    meta = await index.open()
    doc_keys = {attributes_doc_key(index.zarr_format, w.path): w.path for w in meta.wells}
    found = await index.docs(doc_keys)
    present = [doc_keys[k] for k, v in found.items() if v is not None]
    missing = [doc_keys[k] for k, v in found.items() if v is None]
    wells = await index.wells(present)
    field_counts = Counter(len(w.images) for w in wells.values())
    summary: dict[str, Any] = {
        "url": plate.url,
        "name": meta.name,
        "version": meta.version,
        "zarr_format": index.zarr_format,
        "consolidated_metadata": index.consolidated is not None,
        "rows": list(meta.rows),
        "columns": list(meta.columns),
        "wells_declared": len(meta.wells),
        "wells_present": len(present),
        "wells_missing": missing,
        "fields_per_well": {str(k): v for k, v in sorted(field_counts.items())},
        "fields_total": sum(len(w.images) for w in wells.values()),
        "acquisitions": [
            {"id": a.id, "name": a.name, "maximum_field_count": a.maximum_field_count}
            for a in meta.acquisitions
        ],
        "field_count": meta.field_count,
        "image": None,
        "total_bytes": None,
    }
    first = next(((p, w) for p, w in wells.items() if w.images), None)
    if first is not None:
        node = join_key(first[0], first[1].images[0].path)
        image = await index.image(node)
        array = (
            await index.array(join_key(node, image.datasets[0].path)) if image.datasets else None
        )
        summary["image"] = {
            "path": node,
            "axes": list(image.axis_names),
            "channels": list(image.channel_names),
            "levels": len(image.datasets),
            "shape": list(array.shape) if array else None,
            "dtype": array.dtype if array else None,
            "chunks": list(array.chunks) if array else None,
            "shards": list(array.shards) if array and array.shards else None,
            "scale": list(image.datasets[0].scale) if image.datasets else None,
        }
    sizes = await plate.fs.source.known_sizes()
    if sizes is not None:
        summary["total_bytes"] = sum(sizes.values())
    elif with_size or isinstance(plate.fs.source, LocalSource):
        summary["total_bytes"] = sum(e["size"] for e in await plate.fs.source.find(""))
    return summary


def plate_summary(plate: Plate, *, with_size: bool = False) -> dict[str, Any]:
    """The plate summary as a JSON-ready dict.

    ``total_bytes`` is filled when it is cheap to know (local directories, ``.ozx``)
    or when ``with_size`` asks for a full listing.
    """
    return sync(plate.fs.loop, _summary, plate, with_size)


def _human(n: int | None) -> str:
    if n is None:
        return "unknown (use --size to count)"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a short block of text for people."""
    rows, cols = summary["rows"], summary["columns"]
    fields = ", ".join(f"{n} fields: {c} wells" for n, c in summary["fields_per_well"].items())
    lines = [
        f"plate        {summary['name'] or '(unnamed)'}",
        f"location     {summary['url']}",
        f"OME-Zarr     {summary['version']} (zarr v{summary['zarr_format']}"
        f"{', consolidated' if summary['consolidated_metadata'] else ''})",
        f"layout       {len(rows)} rows x {len(cols)} columns"
        f" ({rows[0]}..{rows[-1]}, {cols[0]}..{cols[-1]})"
        if rows and cols
        else "layout       empty",
        f"wells        {summary['wells_present']} present of {summary['wells_declared']} declared",
        f"fields       {summary['fields_total']} in all ({fields or 'none'})",
    ]
    if summary["wells_missing"]:
        lines.append(f"missing      {', '.join(summary['wells_missing'][:10])}")
    acq = summary["acquisitions"]
    if acq:
        names = ", ".join(f"{a['id']}{' ' + repr(a['name']) if a['name'] else ''}" for a in acq)
        lines.append(f"acquisitions {len(acq)}: {names}")
    image = summary["image"]
    if image:
        shape = "x".join(str(s) for s in image["shape"] or [])
        chunks = "x".join(str(s) for s in image["chunks"] or [])
        lines += [
            f"level 0      {shape} {image['dtype']} ({''.join(image['axes'])}), chunks {chunks}"
            + (f", shards {'x'.join(str(s) for s in image['shards'])}" if image["shards"] else ""),
            f"levels       {image['levels']}",
            f"channels     {', '.join(image['channels']) or '(none)'}",
        ]
    lines.append(f"total size   {_human(summary['total_bytes'])}")
    return "\n".join(lines)
