"""OME-Zarr metadata: the normalised model, parsers, validators and writers (no I/O)."""

from __future__ import annotations

from hcsfs.ome.emit import (
    image_attributes,
    labels_attributes,
    plate_attributes,
    well_attributes,
)
from hcsfs.ome.model import (
    Acquisition,
    Axis,
    Channel,
    Dataset,
    ImageMeta,
    LabelsMeta,
    PlateMeta,
    WellImageRef,
    WellMeta,
    WellRef,
)
from hcsfs.ome.parse import (
    decode_json,
    ome_namespace,
    parse_image,
    parse_labels,
    parse_plate,
    parse_well,
    zarr_json_attributes,
)
from hcsfs.ome.validate import (
    Issue,
    MetadataWarning,
    is_valid,
    validate_image,
    validate_label,
    validate_plate,
    validate_well,
)

__all__ = [
    "Acquisition",
    "Axis",
    "Channel",
    "Dataset",
    "ImageMeta",
    "Issue",
    "LabelsMeta",
    "MetadataWarning",
    "PlateMeta",
    "WellImageRef",
    "WellMeta",
    "WellRef",
    "decode_json",
    "image_attributes",
    "is_valid",
    "labels_attributes",
    "ome_namespace",
    "parse_image",
    "parse_labels",
    "parse_plate",
    "parse_well",
    "plate_attributes",
    "validate_image",
    "validate_label",
    "validate_plate",
    "validate_well",
    "well_attributes",
    "zarr_json_attributes",
]
