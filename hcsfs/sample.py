"""A small, fully specified sample plate, for ``hcsfs demo``, the docs and the tests.

The plate is written with zarr itself (not with hcsfs), in the OME-Zarr 0.4 (zarr v2)
or 0.5 (zarr v3) layout: several wells, two fields per well in two acquisitions,
two pyramid levels, omero channels and a label image on one field. Pixel values are
a pure function of (well, field, level), so readers can check every byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

__all__ = ["SamplePlateSpec", "expected_field", "write_sample_plate"]


@dataclass(frozen=True)
class SamplePlateSpec:
    """What the sample plate contains."""

    rows: tuple[str, ...] = ("A", "B")
    columns: tuple[str, ...] = ("1", "2", "3")
    wells: tuple[str, ...] = ("A/1", "A/2", "B/3")
    fields: int = 2
    shape: tuple[int, ...] = (1, 2, 1, 64, 64)
    chunks: tuple[int, ...] = (1, 1, 1, 32, 32)
    levels: int = 2
    dtype: str = "uint16"
    channel_names: tuple[str, ...] = ("DAPI", "GFP")
    name: str = "sample plate"
    label_field: str = "A/1/0"
    acquisitions: tuple[int, ...] = (0, 1)
    extra: dict[str, Any] = field(default_factory=dict)


def expected_field(
    spec: SamplePlateSpec, well: str, field_index: int, level: int = 0
) -> np.ndarray:
    """The pixels the sample plate holds for ``well``/``field_index`` at ``level``."""
    seed = sum(ord(ch) * 31**i for i, ch in enumerate(f"{well}/{field_index}"))
    rng = np.random.default_rng(seed)
    full = rng.integers(0, 4096, size=spec.shape, dtype=np.uint16).astype(spec.dtype)
    step = 2**level
    return full[..., ::step, ::step]


def _axes() -> list[dict[str, str]]:
    return [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]


def _multiscales(spec: SamplePlateSpec, version: str, name: str) -> list[dict[str, Any]]:
    datasets = []
    for level in range(spec.levels):
        factor = float(2**level)
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 1.0, 1.0, 0.5 * factor, 0.5 * factor]},
                    {"type": "translation", "translation": [0.0, 0.0, 0.0, 0.0, 0.0]},
                ],
            }
        )
    block: dict[str, Any] = {"name": name, "axes": _axes(), "datasets": datasets}
    if version == "0.4":
        block["version"] = "0.4"
    return [block]


def _omero(spec: SamplePlateSpec) -> dict[str, Any]:
    colors = ["0000FF", "00FF00", "FF0000", "FFFFFF"]
    return {
        "channels": [
            {
                "label": label,
                "color": colors[i % len(colors)],
                "active": True,
                "window": {"min": 0.0, "max": 4095.0, "start": 0.0, "end": 4095.0},
            }
            for i, label in enumerate(spec.channel_names)
        ]
    }


def _wrap(version: str, content: dict[str, Any]) -> dict[str, Any]:
    if version == "0.4":
        return content
    return {"ome": {"version": version, **content}}


def _create_array(
    group: zarr.Group, name: str, data: np.ndarray, spec: SamplePlateSpec, v2: bool
) -> None:
    chunks = tuple(min(c, s) for c, s in zip(spec.chunks, data.shape, strict=True))
    kwargs: dict[str, Any] = {}
    if v2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        kwargs["dimension_names"] = ["t", "c", "z", "y", "x"][-data.ndim :]
    array = group.create_array(name, shape=data.shape, chunks=chunks, dtype=data.dtype, **kwargs)
    array[...] = data


def write_sample_plate(
    store: Any,
    *,
    version: str = "0.5",
    spec: SamplePlateSpec | None = None,
    consolidated: bool = False,
) -> SamplePlateSpec:
    """Write the sample plate to ``store`` (a path, URL or zarr store); return its spec."""
    spec = spec or SamplePlateSpec()
    if version not in ("0.4", "0.5"):
        raise ValueError(f"sample plates are written as 0.4 or 0.5, not {version!r}")
    v2 = version == "0.4"
    root = zarr.open_group(store, mode="w", zarr_format=2 if v2 else 3)
    wells_meta = []
    for path in spec.wells:
        row, column = path.split("/")
        wells_meta.append(
            {
                "path": path,
                "rowIndex": spec.rows.index(row),
                "columnIndex": spec.columns.index(column),
            }
        )
    plate: dict[str, Any] = {
        "name": spec.name,
        "rows": [{"name": r} for r in spec.rows],
        "columns": [{"name": c} for c in spec.columns],
        "wells": wells_meta,
        "acquisitions": [
            {"id": a, "name": f"acquisition {a}", "maximumfieldcount": spec.fields}
            for a in spec.acquisitions
        ],
        "field_count": spec.fields,
    }
    if v2:
        plate["version"] = "0.4"
    root.attrs.update(_wrap(version, {"plate": plate}))
    for path in spec.wells:
        well_group = root.require_group(path)
        images = [
            {"path": str(f), "acquisition": spec.acquisitions[f % len(spec.acquisitions)]}
            for f in range(spec.fields)
        ]
        well: dict[str, Any] = {"images": images}
        if v2:
            well["version"] = "0.4"
        well_group.attrs.update(_wrap(version, {"well": well}))
        for f in range(spec.fields):
            image = well_group.require_group(str(f))
            image.attrs.update(
                _wrap(
                    version,
                    {
                        "multiscales": _multiscales(spec, version, f"{path}/{f}"),
                        "omero": _omero(spec),
                    },
                )
            )
            for level in range(spec.levels):
                _create_array(image, str(level), expected_field(spec, path, f, level), spec, v2)
            if f"{path}/{f}" == spec.label_field:
                _write_labels(image, spec, version, v2)
    if consolidated:
        zarr.consolidate_metadata(root.store)
    return spec


def _write_labels(image: zarr.Group, spec: SamplePlateSpec, version: str, v2: bool) -> None:
    labels = image.require_group("labels")
    labels.attrs.update(_wrap(version, {"labels": ["cells"]}))
    cells = labels.require_group("cells")
    label_spec = SamplePlateSpec(shape=(1, 1, 1, 64, 64), chunks=spec.chunks, levels=spec.levels)
    content: dict[str, Any] = {
        "multiscales": _multiscales(label_spec, version, "cells"),
        "image-label": {
            "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
            "source": {"image": "../../"},
        },
    }
    if v2:
        content["image-label"]["version"] = "0.4"
    cells.attrs.update(_wrap(version, content))
    for level in range(spec.levels):
        step = 2**level
        mask = np.zeros((1, 1, 1, 64, 64), dtype="uint8")
        mask[..., 16:48, 16:48] = 1
        _create_array(cells, str(level), mask[..., ::step, ::step], label_spec, v2)
