"""The normalised OME-Zarr metadata model: one shape for every version, 0.1 to 0.6-dev.

Pure data: nothing here does I/O. Parsers in :mod:`hcsfs.ome.parse` build these
objects from a group's attributes; writers turn them back into attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Acquisition",
    "Axis",
    "Channel",
    "Dataset",
    "ImageMeta",
    "LabelsMeta",
    "PlateMeta",
    "WellImageRef",
    "WellMeta",
    "WellRef",
]


@dataclass(frozen=True)
class Acquisition:
    """One acquisition (a run of the microscope over the plate)."""

    id: int
    name: str | None = None
    maximum_field_count: int | None = None
    description: str | None = None
    start_time: int | None = None
    end_time: int | None = None


@dataclass(frozen=True)
class WellRef:
    """A well as the plate lists it: its path and its place in the grid."""

    path: str
    row_index: int
    column_index: int
    row: str
    column: str


@dataclass(frozen=True)
class PlateMeta:
    """The ``plate`` metadata of a plate's root group."""

    version: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[WellRef, ...]
    name: str | None = None
    acquisitions: tuple[Acquisition, ...] = ()
    field_count: int | None = None


@dataclass(frozen=True)
class WellImageRef:
    """A field of view as its well lists it."""

    path: str
    acquisition: int | None = None


@dataclass(frozen=True)
class WellMeta:
    """The ``well`` metadata of a well group."""

    version: str
    images: tuple[WellImageRef, ...]


@dataclass(frozen=True)
class Axis:
    """One axis of an image (``name`` such as ``"c"``; ``type`` space/time/channel)."""

    name: str
    type: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Dataset:
    """One resolution level: the array path and its scale/translation per axis."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Channel:
    """One omero channel (display hints only)."""

    label: str | None = None
    color: str | None = None
    window: dict[str, float] | None = None
    active: bool | None = None


@dataclass(frozen=True)
class ImageMeta:
    """The ``multiscales`` (first entry) and ``omero`` metadata of an image group."""

    version: str
    axes: tuple[Axis, ...]
    datasets: tuple[Dataset, ...]
    name: str | None = None
    channels: tuple[Channel, ...] = ()
    extra_multiscales: int = 0
    is_label: bool = False

    @property
    def axis_names(self) -> tuple[str, ...]:
        """The axis names in order, e.g. ``("t", "c", "z", "y", "x")``."""
        return tuple(axis.name for axis in self.axes)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channel labels from ``omero``, empty when there are none."""
        return tuple(ch.label if ch.label is not None else "" for ch in self.channels)


@dataclass(frozen=True)
class LabelsMeta:
    """The ``labels`` group of an image: the names of its label images."""

    version: str | None
    names: tuple[str, ...] = field(default_factory=tuple)
