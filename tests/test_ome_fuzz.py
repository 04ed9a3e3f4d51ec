"""Random JSON-ish values anywhere in the metadata: a model or MetadataError, nothing else.

CI runs 400 + 100 examples (a couple of seconds). For a longer local run set
``HCSFS_FUZZ_EXAMPLES`` (``max_examples`` of each test), e.g.
``HCSFS_FUZZ_EXAMPLES=20000 pytest tests/test_ome_fuzz.py``; the timeout scales with
it. A crash it finds becomes a regression test of its own.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcsfs.errors import MetadataError
from hcsfs.ome import (
    parse_image,
    parse_plate,
    parse_well,
    validate_image,
    validate_label,
    validate_plate,
    validate_well,
)
from hcsfs.testing import fuzz_examples, fuzz_timeout

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(["0.4", "0.5", "0.6rc0", "scale", "translation", "sequence", "A/1", ".."]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

PLATE = {
    "ome": {
        "version": "0.5",
        "plate": {
            "rows": [{"name": "A"}],
            "columns": [{"name": "1"}],
            "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
            "acquisitions": [{"id": 0, "maximumfieldcount": 1}],
            "field_count": 1,
            "name": "p",
        },
    }
}
WELL = {"well": {"version": "0.4", "images": [{"path": "0", "acquisition": 0}]}}
IMAGE = {
    "ome": {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1, 1]},
                            {"type": "translation", "translation": [0, 0]},
                        ],
                    }
                ],
                "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}],
            }
        ],
        "omero": {
            "channels": [{"color": "FF0000", "window": {"start": 0, "end": 1, "min": 0, "max": 1}}]
        },
        "image-label": {"colors": [{"label-value": 1, "rgba": [0, 0, 0, 0]}]},
    }
}
IMAGE_06 = {
    "ome": {
        "version": "0.6rc0",
        "multiscales": [
            {
                "coordinateSystems": [
                    {
                        "name": "p",
                        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                    }
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {
                                "type": "scale",
                                "scale": [1, 1],
                                "input": {"path": "0"},
                                "output": {"name": "p"},
                            }
                        ],
                    }
                ],
            }
        ],
    }
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(doc: Any, where: tuple[Any, ...], new: Any) -> Any:
    if not where:
        return new
    doc = copy.deepcopy(doc)
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = new
    return doc


def _check(doc: Any, parse: Callable[..., object], validates: list[Callable[..., Any]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parse(doc, path="doc")
        except MetadataError as exc:
            assert exc.path == "doc"
    for validate in validates:
        for strict in (False, True):
            assert isinstance(validate(doc, path="doc", strict=strict), list)


CASES = [
    (PLATE, parse_plate, [validate_plate]),
    (WELL, parse_well, [validate_well]),
    (IMAGE, parse_image, [validate_image, validate_label]),
    (IMAGE_06, parse_image, [validate_image]),
]


@pytest.mark.timeout(fuzz_timeout(60, 400))
@settings(
    max_examples=fuzz_examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), case=st.sampled_from(range(len(CASES))))
def test_random_values_anywhere(data: st.DataObject, case: int) -> None:
    base, parse, validates = CASES[case]
    where = data.draw(st.sampled_from(_paths(base)))
    doc = _replace(base, where, data.draw(JSONISH))
    _check(doc, parse, validates)


@pytest.mark.timeout(fuzz_timeout(60, 100))
@settings(max_examples=fuzz_examples(100), deadline=None)
@given(doc=JSONISH)
def test_random_documents(doc: Any) -> None:
    for parse, validate in (
        (parse_plate, validate_plate),
        (parse_well, validate_well),
        (parse_image, validate_image),
    ):
        _check(doc, parse, [validate, validate_label])
