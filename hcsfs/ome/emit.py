"""Turn :mod:`hcsfs.ome.model` objects back into OME-Zarr group attributes.

The inverse of :mod:`hcsfs.ome.parse` for writing: ``version="0.4"`` gives zarr v2
attributes (OME keys at the top level, ``version`` inside ``plate`` / ``well`` /
``multiscales``); ``version="0.5"`` gives zarr v3 attributes (everything under
``"ome"`` with ``"version": "0.5"``). For a model valid in that version,
``parse_x(x_attributes(m, version=v)) == dataclasses.replace(m, version=v)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hcsfs.ome.model import ImageMeta, PlateMeta, WellMeta

__all__ = [
    "EMIT_VERSIONS",
    "image_attributes",
    "labels_attributes",
    "plate_attributes",
    "well_attributes",
]

#: The versions hcsfs writes.
EMIT_VERSIONS = ("0.4", "0.5")


def _check(version: str) -> None:
    if version not in EMIT_VERSIONS:
        raise ValueError(f"cannot write OME-Zarr version {version!r}; use one of {EMIT_VERSIONS}")


def _wrap(version: str, key: str, body: Any) -> dict[str, Any]:
    if version == "0.4":
        if isinstance(body, dict):
            body = {**body, "version": version}
        return {key: body}
    return {"ome": {"version": version, key: body}}


def _put(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def plate_attributes(meta: PlateMeta, *, version: str) -> dict[str, Any]:
    """Attributes of a plate's root group.

    Parameters
    ----------
    meta
        The plate; ``meta.version`` is ignored in favour of ``version``.
    version
        ``"0.4"`` (zarr v2) or ``"0.5"`` (zarr v3).

    Returns
    -------
    dict
        JSON-ready attributes.
    """
    _check(version)
    plate: dict[str, Any] = {
        "columns": [{"name": name} for name in meta.columns],
        "rows": [{"name": name} for name in meta.rows],
        "wells": [
            {"path": w.path, "rowIndex": w.row_index, "columnIndex": w.column_index}
            for w in meta.wells
        ],
    }
    _put(plate, "name", meta.name)
    _put(plate, "field_count", meta.field_count)
    if meta.acquisitions:
        acquisitions = []
        for acq in meta.acquisitions:
            entry: dict[str, Any] = {"id": acq.id}
            _put(entry, "name", acq.name)
            _put(entry, "maximumfieldcount", acq.maximum_field_count)
            _put(entry, "description", acq.description)
            _put(entry, "starttime", acq.start_time)
            _put(entry, "endtime", acq.end_time)
            acquisitions.append(entry)
        plate["acquisitions"] = acquisitions
    return _wrap(version, "plate", plate)


def well_attributes(meta: WellMeta, *, version: str) -> dict[str, Any]:
    """Attributes of a well group (see :func:`plate_attributes`)."""
    _check(version)
    images = []
    for image in meta.images:
        entry: dict[str, Any] = {"path": image.path}
        _put(entry, "acquisition", image.acquisition)
        images.append(entry)
    return _wrap(version, "well", {"images": images})


def image_attributes(meta: ImageMeta, *, version: str) -> dict[str, Any]:
    """Attributes of an image group: one ``multiscales`` entry, ``omero`` channels and,
    for a label image, an (empty) ``image-label`` (see :func:`plate_attributes`).

    Raises
    ------
    ValueError
        For ``extra_multiscales > 0`` (the model keeps only their count).
    """
    _check(version)
    if meta.extra_multiscales:
        raise ValueError("cannot write extra multiscales entries: the model holds only a count")
    axes = []
    for axis in meta.axes:
        entry: dict[str, Any] = {"name": axis.name}
        _put(entry, "type", axis.type)
        _put(entry, "unit", axis.unit)
        axes.append(entry)
    datasets = []
    for ds in meta.datasets:
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": list(ds.scale)}]
        if ds.translation is not None:
            transforms.append({"type": "translation", "translation": list(ds.translation)})
        datasets.append({"path": ds.path, "coordinateTransformations": transforms})
    multiscale: dict[str, Any] = {"axes": axes, "datasets": datasets}
    _put(multiscale, "name", meta.name)
    if version == "0.4":
        multiscale["version"] = version
    result = _wrap(version, "multiscales", [multiscale])
    ns = result if version == "0.4" else result["ome"]
    if meta.channels:
        channels = []
        for ch in meta.channels:
            entry = {}
            _put(entry, "label", ch.label)
            _put(entry, "color", ch.color)
            _put(entry, "window", dict(ch.window) if ch.window is not None else None)
            _put(entry, "active", ch.active)
            channels.append(entry)
        ns["omero"] = {"channels": channels}
    if meta.is_label:
        ns["image-label"] = {"version": version} if version == "0.4" else {}
    return result


def labels_attributes(names: Iterable[str], *, version: str) -> dict[str, Any]:
    """Attributes of a ``labels`` group listing the label images ``names``."""
    _check(version)
    return _wrap(version, "labels", list(names))
