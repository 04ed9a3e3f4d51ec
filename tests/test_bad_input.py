"""Bad input at the plate level: every broken plate raises the right error, naming the file.

Each case is a small plate (the sample plate's metadata documents, one of them broken)
materialised as a local directory; the representative ones also on S3 and inside an
``.ozx`` archive, so every backend agrees. The zip-record level (hostile archives) is
covered in ``test_ozx_hostile.py``; here the archives are well-formed zips whose
*content* is wrong.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import hcsfs
from hcsfs.cli import main
from hcsfs.errors import (
    ArchiveError,
    HCSError,
    MetadataError,
    NotAPlateError,
    UnsupportedVersionError,
)
from hcsfs.filesystem import HCSFileSystem
from hcsfs.ozx import ome_comment, pack_stream, recommended_order
from hcsfs.sample import write_sample_plate

from .conftest import BUCKET

pytestmark = pytest.mark.timeout(20)

Files = dict[str, bytes]
METADATA_NAMES = ("zarr.json", ".zattrs", ".zgroup", ".zarray")
SECRET = b"OUTSIDE-THE-PLATE-SECRET"


# --------------------------------------------------------------------------- plates


def _read_tree(root: Path) -> Files:
    files: Files = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = Path(dirpath) / name
            files[full.relative_to(root).as_posix()] = full.read_bytes()
    return files


@pytest.fixture(scope="module")
def sample_trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Files]:
    """Every file of the sample plate, per OME-Zarr version (written once per module)."""
    base = tmp_path_factory.mktemp("bad-input-sample")
    trees = {}
    for version in ("0.4", "0.5"):
        root = base / f"plate-{version}.ome.zarr"
        write_sample_plate(str(root), version=version)
        trees[version] = _read_tree(root)
    return trees


def metadata_only(files: Files) -> Files:
    """The metadata documents of a plate (what these tests break), no chunks."""
    return {k: v for k, v in files.items() if k.rpartition("/")[2] in METADATA_NAMES}


def doc(files: Files, key: str) -> dict[str, Any]:
    return json.loads(files[key])


def put_doc(files: Files, key: str, value: Any) -> None:
    files[key] = json.dumps(value).encode()


def edit_ome(files: Files, key: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the OME namespace of the v3 group document ``key``."""
    value = doc(files, key)
    edit(value["attributes"]["ome"])
    put_doc(files, key, value)


def drop(files: Files, prefix: str) -> None:
    for key in [k for k in files if k.startswith(prefix)]:
        del files[key]


def reroot(files: Files, prefix: str) -> Files:
    """The subtree under ``prefix`` as a tree of its own (a well or image as the root)."""
    return {k[len(prefix) :]: v for k, v in files.items() if k.startswith(prefix)}


def write_dir(files: Files, root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for key, data in files.items():
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(root)


def write_ozx(files: Files, path: Path, *, ordered: bool = True) -> str:
    keys = recommended_order(files) if ordered else sorted(files)
    with open(path, "wb") as out:
        pack_stream(((k, files[k]) for k in keys), out, comment=ome_comment("0.5"))
    return str(path)


@dataclass
class Target:
    """A broken plate on one backend."""

    backend: str
    url: str
    options: dict[str, Any]

    def open(self) -> hcsfs.Plate:
        return hcsfs.open_plate(self.url, storage_options=self.options or None)

    def fs(self) -> HCSFileSystem:
        return HCSFileSystem(
            fo=self.url, target_options=self.options or None, skip_instance_cache=True
        )


@pytest.fixture
def place(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str, Files], Target]:
    """``place(backend, files)`` → the files as a plate on ``dir``, ``s3`` or ``ozx``."""

    def make(backend: str, files: Files) -> Target:
        tag = uuid.uuid4().hex[:10]
        if backend == "dir":
            return Target(backend, write_dir(files, tmp_path / f"{tag}.ome.zarr"), {})
        if backend == "ozx":
            return Target(backend, write_ozx(files, tmp_path / f"{tag}.ozx"), {})
        if backend == "s3":
            s3 = request.getfixturevalue("s3")
            options = request.getfixturevalue("s3_options")
            prefix = f"{BUCKET}/bad-input/{tag}/plate.ome.zarr"
            if files:
                s3.pipe({f"{prefix}/{k}": v for k, v in files.items()})
            return Target(backend, f"s3://{prefix}", dict(options))
        raise ValueError(backend)

    return make


# --------------------------------------------------------------------------- actions


def do_open(target: Target) -> Any:
    return target.open().meta


def do_well(target: Target) -> Any:
    return list(target.open().wells["A/1"].images)


def do_image(target: Target) -> Any:
    return target.open().wells["A/1"].image(0).axes


def do_shape(target: Target) -> Any:
    return target.open().wells["A/1"].image(0).shape(0)


ACTIONS: dict[str, Callable[[Target], Any]] = {
    "open": do_open,
    "well": do_well,
    "image": do_image,
    "array": do_shape,
}
#: The document each action reads last (the one a broken case breaks), v3 and v2.
DOCS = {
    "open": ("zarr.json", ".zattrs"),
    "well": ("A/1/zarr.json", "A/1/.zattrs"),
    "image": ("A/1/0/zarr.json", "A/1/0/.zattrs"),
    "array": ("A/1/0/0/zarr.json", "A/1/0/0/.zarray"),
}


def assert_names(exc: BaseException, *parts: str) -> None:
    text = str(exc)
    for part in parts:
        assert part in text, f"{part!r} not in the message {text!r}"
    assert "\n" not in text.strip(), f"message is not one line: {text!r}"


def assert_metadata_error(exc: BaseException, target: Target, key: str, *problem: str) -> None:
    """The message names the plate, the document and the problem; ``.path`` is that document."""
    assert isinstance(exc, MetadataError)
    assert exc.path.endswith(key), f"{exc.path!r} does not name {key!r}"
    assert_names(exc, target.url.rstrip("/"), key, *problem)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One broken plate: ``build`` turns the sample plate's metadata into the broken one."""

    id: str
    build: Callable[[Files], Files]
    action: str
    error: type[HCSError]
    problem: tuple[str, ...]
    version: str = "0.5"
    everywhere: bool = False  # also on S3 and in an .ozx
    key: str | None = None  # the document named; default: the action's document

    @property
    def doc_key(self) -> str:
        if self.key is not None:
            return self.key
        return DOCS[self.action][0 if self.version == "0.5" else 1]


def _edit(key: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Files], Files]:
    def build(files: Files) -> Files:
        edit_ome(files, key, edit)
        return files

    return build


def _replace(key: str, old: bytes, new: bytes) -> Callable[[Files], Files]:
    """Edit the raw text of a document (for what ``json.dumps`` cannot write)."""

    def build(files: Files) -> Files:
        assert old in files[key], (key, old)
        files[key] = files[key].replace(old, new, 1)
        return files

    return build


def _consolidated_v2(files: Files) -> Files:
    """Add a v2 ``.zmetadata`` holding every document, the well A/1 broken in it."""
    metadata = {k: json.loads(v) for k, v in files.items()}
    metadata["A/1/.zattrs"]["well"]["images"] = "0"
    put_doc(files, ".zmetadata", {"zarr_consolidated_format": 1, "metadata": metadata})
    return files


def _consolidated_v3(files: Files) -> Files:
    """Inline consolidated metadata in the root ``zarr.json``, the well A/1 broken in it."""
    nodes = {
        k[: -len("/zarr.json")]: json.loads(v) for k, v in files.items() if k.endswith("/zarr.json")
    }
    nodes["A/1"]["attributes"]["ome"]["well"]["images"] = "0"
    root = doc(files, "zarr.json")
    root["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": nodes}
    put_doc(files, "zarr.json", root)
    return files


def _dropped(prefix: str) -> Callable[[Files], Files]:
    def build(files: Files) -> Files:
        drop(files, prefix)
        return files

    return build


def _raw(key: str, data: bytes) -> Callable[[Files], Files]:
    def build(files: Files) -> Files:
        files[key] = data
        return files

    return build


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted path (``plate.wells.0.rowIndex``) in a JSON object."""

    def edit(ns: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = ns
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(ns: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = ns
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return edit


def _array_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[Files], Files]:
    def build(files: Files) -> Files:
        value = doc(files, "A/1/0/0/zarr.json")
        edit(value)
        put_doc(files, "A/1/0/0/zarr.json", value)
        return files

    return build


def _v2_attrs(key: str, value: Any) -> Callable[[Files], Files]:
    def build(files: Files) -> Files:
        put_doc(files, key, value)
        return files

    return build


def _chunk_mismatch(array: dict[str, Any]) -> None:
    array["chunk_grid"]["configuration"]["chunk_shape"] = [32, 32]


BAD_JSON = b'{"zarr_format": 3, "node_type": "group", "attributes": {"ome": '
NOT_UTF8 = b'{"zarr_format": 3, "node_type": "group", "attributes": {"name": "\xff\xfe"}}'

CASES: list[Case] = [
    # -- not a plate at all
    Case("image-as-plate", lambda f: reroot(f, "A/1/0/"), "open", NotAPlateError,
         ("single image", "not an HCS plate"), everywhere=True),
    Case("well-as-plate", lambda f: reroot(f, "A/1/"), "open", NotAPlateError,
         ("well group", "not an HCS plate")),
    Case("plain-zarr-group", _raw("zarr.json", b'{"zarr_format": 3, "node_type": "group"}'),
         "open", NotAPlateError, ("plate",)),
    Case("v2-zattrs-without-plate", _v2_attrs(".zattrs", {"foo": 1}), "open", NotAPlateError,
         ("plate",), version="0.4"),
    Case("root-is-an-array", lambda f: reroot(f, "A/1/0/0/"), "open", MetadataError,
         ("group",)),
    # -- malformed documents
    *(
        Case(f"malformed-json-{action}", _raw(DOCS[action][0], BAD_JSON), action,
             MetadataError, ("JSON",), everywhere=action in ("open", "well"))
        for action in ACTIONS
    ),
    *(
        Case(f"json-not-object-{action}", _raw(DOCS[action][0], b"[1, 2, 3]"), action,
             MetadataError, ("object",))
        for action in ACTIONS
    ),
    *(
        Case(f"not-utf8-{action}", _raw(DOCS[action][0], NOT_UTF8), action, MetadataError,
             ("UTF-8",))
        for action in ACTIONS
    ),
    Case("empty-document", _raw("zarr.json", b""), "open", MetadataError, ("JSON",)),
    Case("json-null", _raw("zarr.json", b"null"), "open", MetadataError, ("object",)),
    Case("deeply-nested-json", _raw("zarr.json", b"[" * 100_000 + b"]" * 100_000), "open",
         MetadataError, ("nested",)),
    Case("int-with-5000-digits",
         _replace("zarr.json", b'"field_count": 2', b'"field_count": ' + b"9" * 5000), "open",
         MetadataError, ()),
    Case("consolidated-v2-malformed", lambda f: _raw(".zmetadata", b'{"metadata": ')(f),
         "open", MetadataError, ("JSON",), version="0.4", key=".zmetadata"),
    Case("consolidated-v2-metadata-not-object",
         lambda f: _v2_attrs(".zmetadata", {"metadata": []})(f), "open", MetadataError,
         ("metadata",), version="0.4", key=".zmetadata"),
    Case("consolidated-v2-bad-well", _consolidated_v2, "well", MetadataError,
         ("well.images", "list"), version="0.4"),
    Case("consolidated-v3-bad-well", _consolidated_v3, "well", MetadataError,
         ("well.images", "list"), everywhere=True),
    Case("malformed-json-v2-root", _raw(".zattrs", b'{"plate": '), "open", MetadataError,
         ("JSON",), version="0.4"),
    Case("malformed-json-v2-well", _raw("A/1/.zattrs", b"{,}"), "well", MetadataError,
         ("JSON",), version="0.4"),
    Case("malformed-json-v2-array", _raw("A/1/0/0/.zarray", b"{"), "array", MetadataError,
         ("JSON",), version="0.4"),
    # -- wrong types
    Case("attributes-not-object",
         _raw("zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": 5}'),
         "open", MetadataError, ("attributes",)),
    Case("ome-not-object",
         _raw("zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": '
                           b'{"ome": "plate"}}'),
         "open", MetadataError, ("ome",)),
    Case("plate-not-object", _edit("zarr.json", _set("plate", [])), "open", MetadataError,
         ("plate",)),
    Case("rows-not-list", _edit("zarr.json", _set("plate.rows", "AB")), "open", MetadataError,
         ("plate.rows", "list")),
    Case("row-name-int", _edit("zarr.json", _set("plate.rows.0", {"name": 1})), "open",
         MetadataError, ("plate.rows[0].name", "string")),
    Case("wells-missing", _edit("zarr.json", _del("plate.wells")), "open", MetadataError,
         ("plate.wells",)),
    Case("well-rowindex-string", _edit("zarr.json", _set("plate.wells.0.rowIndex", "0")),
         "open", MetadataError, ("plate.wells[0].rowIndex", "integer")),
    Case("well-rowindex-out-of-range", _edit("zarr.json", _set("plate.wells.0.rowIndex", 99)),
         "open", MetadataError, ("plate.wells[0].rowIndex", "out of range")),
    Case("well-rowindex-infinite",
         _replace("zarr.json", b'"rowIndex": 0', b'"rowIndex": 1e400'), "open",
         MetadataError, ("plate.wells[0].rowIndex", "integer")),
    Case("well-rowindex-bool", _edit("zarr.json", _set("plate.wells.0.rowIndex", True)),
         "open", MetadataError, ("plate.wells[0].rowIndex", "integer")),
    Case("well-path-int", _edit("zarr.json", _set("plate.wells.0.path", 11)), "open",
         MetadataError, ("plate.wells[0].path", "string")),
    Case("field-count-absurd", _edit("zarr.json", _set("plate.field_count", 10**15)), "open",
         MetadataError, ("field_count",)),
    Case("images-not-list", _edit("A/1/zarr.json", _set("well.images", {"path": "0"})),
         "well", MetadataError, ("well.images", "list")),
    Case("image-path-int", _edit("A/1/zarr.json", _set("well.images.0.path", 0)), "well",
         MetadataError, ("well.images[0].path", "string")),
    Case("axes-int", _edit("A/1/0/zarr.json", _set("multiscales.0.axes", 5)), "image",
         MetadataError, ("multiscales[0].axes", "list")),
    Case("datasets-missing", _edit("A/1/0/zarr.json", _del("multiscales.0.datasets")),
         "image", MetadataError, ("multiscales[0].datasets",)),
    Case("multiscales-empty", _edit("A/1/0/zarr.json", _set("multiscales", [])), "image",
         MetadataError, ("multiscales",)),
    Case("scale-wrong-length",
         _edit("A/1/0/zarr.json",
               _set("multiscales.0.datasets.0.coordinateTransformations.0.scale", [1.0])),
         "image", MetadataError, ("coordinateTransformations[0].scale",)),
    Case("scale-not-number",
         _edit("A/1/0/zarr.json",
               _set("multiscales.0.datasets.0.coordinateTransformations.0.scale",
                    ["a", 1, 1, 1, 1])),
         "image", MetadataError, ("scale[0]", "number")),
    Case("scale-nan",
         _edit("A/1/0/zarr.json",
               _set("multiscales.0.datasets.0.coordinateTransformations.0.scale",
                    [1, 1, 1, float("nan"), 1])),
         "image", MetadataError, ("scale[3]", "finite")),
    Case("shape-negative", _array_edit(lambda a: a.update(shape=[1, 2, 1, -64, 64])), "array",
         MetadataError, ("shape",)),
    Case("shape-not-list", _array_edit(lambda a: a.update(shape="64")), "array",
         MetadataError, ("shape",)),
    Case("shape-float", _array_edit(lambda a: a.update(shape=[1, 2, 1, 64.5, 64])), "array",
         MetadataError, ("shape",)),
    Case("chunk-shape-mismatch", _array_edit(_chunk_mismatch), "array", MetadataError,
         ("chunk shape",)),
    Case("chunk-grid-missing", _array_edit(lambda a: a.pop("chunk_grid")), "array",
         MetadataError, ("chunk_grid",)),
    Case("sharding-configuration-not-object",
         _array_edit(lambda a: a.update(codecs=[{"name": "sharding_indexed",
                                                 "configuration": 5}])),
         "array", MetadataError, ("configuration",)),
    Case("data-type-unparsable", _array_edit(lambda a: a.update(data_type="(2,)i4")),
         "array", MetadataError, ("data type",)),
    Case("array-is-a-group",
         _raw("A/1/0/0/zarr.json", b'{"zarr_format": 3, "node_type": "group"}'), "array",
         MetadataError, ("array",)),
    Case("v2-zarray-shape-negative",
         lambda f: _v2_attrs("A/1/0/0/.zarray", {**doc(f, "A/1/0/0/.zarray"),
                                                 "shape": [1, 2, 1, -1, 64]})(f),
         "array", MetadataError, ("shape",), version="0.4"),
    # -- unsafe paths
    *(
        Case(f"well-path-{name}", _edit("zarr.json", _set("plate.wells.0.path", path)),
             "open", MetadataError, ("plate.wells[0].path",),
             everywhere=name == "dotdot")
        for name, path in (
            ("dotdot", "../1"),
            ("dotdot-inner", "A/.."),
            ("absolute", "/A/1"),
            ("backslash", "A\\1"),
            ("nul", "A/1\x00"),
            ("three-parts", "A/1/0"),
        )
    ),
    *(
        Case(f"image-path-{name}", _edit("A/1/zarr.json", _set("well.images.0.path", path)),
             "well", MetadataError, ("well.images[0].path",))
        for name, path in (
            ("slash", "0/0"),
            ("dotdot", ".."),
            ("dot", "."),
            ("backslash", "..\\0"),
            ("empty", ""),
        )
    ),
    Case("dataset-path-dotdot",
         _edit("A/1/0/zarr.json", _set("multiscales.0.datasets.0.path", "../../../0")),
         "image", MetadataError, ("multiscales[0].datasets[0].path",)),
    Case("v2-well-path-dotdot",
         lambda f: _v2_attrs(".zattrs", _v2_dotdot(doc(f, ".zattrs")))(f),
         "open", MetadataError, ("plate.wells[0].path",), version="0.4"),
    # -- versions
    Case("version-9.9-root", _edit("zarr.json", _set("version", "9.9")), "open",
         UnsupportedVersionError, ("9.9",), everywhere=True),
    Case("version-9.9-well", _edit("A/1/zarr.json", _set("version", "9.9")), "well",
         UnsupportedVersionError, ("9.9",)),
    Case("version-9.9-image", _edit("A/1/0/zarr.json", _set("version", "9.9")), "image",
         UnsupportedVersionError, ("9.9",)),
    Case("version-int", _edit("zarr.json", _set("version", 5)), "open",
         UnsupportedVersionError, ("ome.version", "5")),
    Case("version-missing", _edit("zarr.json", _del("version")), "open", MetadataError,
         ("version",)),
    Case("v2-version-9.9",
         lambda f: _v2_attrs(".zattrs", _v2_version(doc(f, ".zattrs"), "9.9"))(f),
         "open", UnsupportedVersionError, ("9.9",), version="0.4"),
    # -- missing pieces
    Case("well-missing", _dropped("A/1/"), "well", MetadataError,
         ("missing",), everywhere=True),
    Case("field-missing", _dropped("A/1/0/"), "image", MetadataError,
         ("missing",), everywhere=True),
    Case("array-missing", _dropped("A/1/0/0/"), "array", MetadataError,
         ("missing",)),
    Case("v2-well-missing", _dropped("A/1/"), "well", MetadataError,
         ("missing",), version="0.4"),
]  # fmt: skip


def _v2_dotdot(attrs: dict[str, Any]) -> dict[str, Any]:
    attrs["plate"]["wells"][0]["path"] = "../1"
    return attrs


def _v2_version(attrs: dict[str, Any], version: str) -> dict[str, Any]:
    attrs["plate"]["version"] = version
    return attrs


def _params() -> Iterator[Any]:
    for case in CASES:
        backends = ["dir"]
        if case.everywhere:
            backends += ["s3", "ozx"] if case.version == "0.5" else ["s3"]
        for backend in backends:
            yield pytest.param(case, backend, id=f"{case.id}-{backend}")


def build_case(case: Case, sample_trees: dict[str, Files]) -> Files:
    return case.build(metadata_only(dict(sample_trees[case.version])))


@pytest.mark.parametrize(("case", "backend"), list(_params()))
def test_broken_plate_raises_a_clear_error(
    case: Case,
    backend: str,
    sample_trees: dict[str, Files],
    place: Callable[[str, Files], Target],
) -> None:
    target = place(backend, build_case(case, sample_trees))
    local = Path(target.url) if backend != "s3" else None
    before = _listing(local.parent) if local else set()
    start = time.monotonic()
    with pytest.raises(case.error) as info:
        ACTIONS[case.action](target)
    assert type(info.value) is case.error, f"{type(info.value).__name__}: {info.value}"
    assert_metadata_error(info.value, target, case.doc_key, *case.problem)
    assert time.monotonic() - start < 10
    if local is not None:
        assert _listing(local.parent) == before, "reading a broken plate wrote files"


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx"])
def test_missing_well_opens_and_only_that_well_fails(
    backend: str, sample_trees: dict[str, Files], place: Callable[[str, Files], Target]
) -> None:
    files = metadata_only(dict(sample_trees["0.5"]))
    drop(files, "A/1/")
    target = place(backend, files)
    plate = target.open()
    assert sorted(plate.wells) == ["A/1", "A/2", "B/3"]
    assert list(plate.wells["A/2"].images) == ["0", "1"]
    with pytest.raises(MetadataError) as info:
        plate.wells["A/1"].images  # noqa: B018
    assert_metadata_error(info.value, target, "A/1/zarr.json", "missing")
    walked = []
    with pytest.raises(MetadataError):  # walking reads ahead: the missing well still surfaces
        for path, well in plate.wells.items():
            walked.append((path, list(well.images)))


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx"])
def test_info_reports_a_missing_well(
    backend: str, sample_trees: dict[str, Files], place: Callable[[str, Files], Target]
) -> None:
    files = metadata_only(dict(sample_trees["0.5"]))
    drop(files, "A/1/")
    target = place(backend, files)
    result = CliRunner().invoke(main, ["info", target.url, *cli_options(target)])
    assert result.exit_code == 0, result.output
    assert "missing" in result.stdout
    assert "A/1" in result.stdout
    assert "2 present of 3 declared" in result.stdout


def cli_options(target: Target) -> list[str]:
    args: list[str] = []
    for key, value in target.options.items():
        if key == "endpoint_url":
            args += ["--endpoint-url", value]
        else:
            args += ["-o", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return args


# --------------------------------------------------------------------------- not a plate


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx"])
def test_random_files_are_not_a_plate(backend: str, place: Callable[[str, Files], Target]) -> None:
    target = place(backend, {"README.txt": b"hello", "data/1.bin": os.urandom(64)})
    with pytest.raises(NotAPlateError) as info:
        target.open()
    assert_names(info.value, target.url, "not an OME-Zarr plate")


@pytest.mark.parametrize("backend", ["dir", "ozx"])
def test_empty_plate_is_not_a_plate(backend: str, place: Callable[[str, Files], Target]) -> None:
    target = place(backend, {})
    with pytest.raises(NotAPlateError) as info:
        target.open()
    assert_names(info.value, target.url, "empty")


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx"])
def test_missing_location_says_it_does_not_exist(
    backend: str, tmp_path: Path, s3_options: dict[str, Any]
) -> None:
    urls = {
        "dir": (str(tmp_path / "nowhere.ome.zarr"), {}),
        "s3": (f"s3://{BUCKET}/bad-input/{uuid.uuid4().hex}/plate.ome.zarr", s3_options),
        "ozx": (str(tmp_path / "nowhere.ozx"), {}),
    }
    url, options = urls[backend]
    with pytest.raises((FileNotFoundError, NotAPlateError)) as info:
        hcsfs.open_plate(url, storage_options=options)
    assert_names(info.value, url)
    assert "does not exist" in str(info.value) or "no such" in str(info.value)
    assert not os.path.exists(tmp_path / "nowhere.ome.zarr")
    assert not os.path.exists(tmp_path / "nowhere.ozx")


def test_missing_location_is_the_same_error_on_every_backend(
    tmp_path: Path, s3_options: dict[str, Any]
) -> None:
    kinds = set()
    for url, options in (
        (str(tmp_path / "nowhere.ome.zarr"), {}),
        (f"s3://{BUCKET}/bad-input/{uuid.uuid4().hex}/plate.ome.zarr", s3_options),
        (str(tmp_path / "nowhere.ozx"), {}),
    ):
        with pytest.raises((FileNotFoundError, NotAPlateError)) as info:
            hcsfs.open_plate(url, storage_options=options)
        kinds.add(type(info.value).__name__)
    assert len(kinds) == 1, f"a missing plate raises {sorted(kinds)} depending on the backend"


# --------------------------------------------------------------------------- absurd sizes


#: Opens one plate in a fresh interpreter; prints the error, the time and how much the
#: peak resident memory grew while opening (so the test process itself stays small).
MEASURE_OPEN = """
import json, resource, sys, time
import hcsfs
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    hcsfs.open_plate(sys.argv[1])
    error = None
except Exception as exc:
    error = [type(exc).__name__, str(exc)[:500]]
seconds = time.monotonic() - start
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"error": error, "seconds": seconds, "grew_mib": grew / 1024}))
"""


def measure_open(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_OPEN, url], capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's unit")
def test_ten_million_wells_fail_fast_with_bounded_memory(tmp_path: Path) -> None:
    """A root document declaring 10^7 wells is refused by the well cap, cheaply.

    The wells are the smallest JSON objects (``{}``) so the document is only 30 MB; what
    is measured is what the reader builds from it. Materialising 10^7 dicts alone costs
    ~640 MB; a reader that caps the well count before building them stays near a few
    copies of the document.
    """
    count = 10**7
    root = tmp_path / "huge.ome.zarr"
    root.mkdir()
    head = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "ome": {
                "version": "0.5",
                "plate": {"rows": [{"name": "A"}], "columns": [{"name": "1"}], "wells": []},
            }
        },
    }
    prefix, _, suffix = json.dumps(head).encode().partition(b'"wells": []')
    with open(root / "zarr.json", "wb") as out:
        out.write(prefix + b'"wells": [')
        out.write(b"{}," * (count - 1) + b"{}")
        out.write(b"]" + suffix)
    size_mib = (root / "zarr.json").stat().st_size / 2**20
    result = measure_open(str(root))
    assert result["error"] is not None and result["error"][0] == "MetadataError", result
    # refused before any JSON object is built: the raw bytes are counted first
    for part in (f"{root}/zarr.json", "JSON objects"):
        assert part in result["error"][1], result
    assert result["seconds"] < 5, result
    assert result["grew_mib"] < 256, f"{result} for a {size_mib:.0f} MiB document"


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's unit")
def test_oversized_document_is_refused_without_loading_it(tmp_path: Path) -> None:
    """A 300 MiB root ``zarr.json`` (a sparse file) exceeds the parser's document cap.

    ``hcsfs.ome.parse.MAX_JSON_SIZE`` (256 MiB) says how large a document may be; the
    reader must refuse a larger one instead of reading and decoding all of it.
    """
    root = tmp_path / "oversized.ome.zarr"
    root.mkdir()
    with open(root / "zarr.json", "wb") as out:
        out.write(b'{"zarr_format": 3, "node_type": "group", "attributes": {')
        out.truncate(300 * 2**20)
    result = measure_open(str(root))
    assert result["error"] is not None and result["error"][0] == "MetadataError", result
    assert f"{root}/zarr.json" in result["error"][1], result
    assert result["grew_mib"] < 256, f"{result} for a 300 MiB document"


# --------------------------------------------------------------------------- .ozx content


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Path]:
    """A directory for archives; nothing may appear in it (or in the temp dir) while used."""
    folder = tmp_path / "archives"
    folder.mkdir()
    yield folder


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def _temp_listing() -> set[str]:
    tmp = tempfile.gettempdir()
    return {n for n in os.listdir(tmp) if "hcsfs" in n or n.endswith((".ozx", ".zip"))}


def _zip(path: Path, members: dict[str, bytes], comment: bytes = b"") -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.comment = comment
    return str(path)


OzxMaker = Callable[[Path, dict[str, Files]], str]


def _random_zip(folder: Path, trees: dict[str, Files]) -> str:
    return _zip(folder / "random.ozx", {"notes.txt": b"hi", "img/1.png": os.urandom(100)})


def _nested_zip(folder: Path, trees: dict[str, Files]) -> str:
    files = {f"plate.ome.zarr/{k}": v for k, v in metadata_only(trees["0.5"]).items()}
    return write_ozx(files, folder / "nested.ozx", ordered=False)


def _image_zip(folder: Path, trees: dict[str, Files]) -> str:
    return write_ozx(reroot(trees["0.5"], "A/1/0/"), folder / "image.ozx")


def _empty_zip(folder: Path, trees: dict[str, Files]) -> str:
    return _zip(folder / "empty.ozx", {}, ome_comment("0.5"))


def _truncated(keep: float) -> OzxMaker:
    def make(folder: Path, trees: dict[str, Files]) -> str:
        buf = io.BytesIO()
        files = trees["0.5"]
        pack_stream(((k, files[k]) for k in recommended_order(files)), buf)
        data = buf.getvalue()
        path = folder / f"truncated-{keep}.ozx"
        path.write_bytes(data[: int(len(data) * keep)])
        return str(path)

    return make


def _garbage(folder: Path, trees: dict[str, Files]) -> str:
    path = folder / "garbage.ozx"
    path.write_bytes(b"this is not a zip archive at all\n" * 100)
    return str(path)


def _zero(folder: Path, trees: dict[str, Files]) -> str:
    path = folder / "zero.ozx"
    path.write_bytes(b"")
    return str(path)


OZX_CASES: list[tuple[str, OzxMaker, type[HCSError], str]] = [
    ("random-files", _random_zip, NotAPlateError, "not an OME-Zarr plate"),
    ("plate-nested-in-a-folder", _nested_zip, NotAPlateError, "not an OME-Zarr plate"),
    ("image-not-plate", _image_zip, NotAPlateError, "single image"),
    ("empty-zip", _empty_zip, NotAPlateError, "empty"),
    ("truncated-half", _truncated(0.5), ArchiveError, ""),
    ("truncated-tail", _truncated(0.999), ArchiveError, ""),
    ("truncated-head", _truncated(0.001), ArchiveError, ""),
    ("not-a-zip", _garbage, ArchiveError, ""),
    ("zero-bytes", _zero, ArchiveError, ""),
]


@pytest.mark.parametrize(
    ("make", "error", "problem"),
    [pytest.param(m, e, p, id=i) for i, m, e, p in OZX_CASES],
)
def test_bad_archive_names_the_archive_and_writes_nothing(
    make: OzxMaker,
    error: type[HCSError],
    problem: str,
    watched: Path,
    sample_trees: dict[str, Files],
) -> None:
    url = make(watched, sample_trees)
    before, temp_before = _listing(watched), _temp_listing()
    with pytest.raises(error) as info:
        hcsfs.open_plate(url).wells["A/1"].images  # noqa: B018
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert_names(info.value, url, problem)
    assert _listing(watched) == before
    assert _temp_listing() == temp_before


def test_folder_named_like_an_archive_opens_as_a_directory_plate(
    watched: Path, sample_trees: dict[str, Files]
) -> None:
    """An unpacked archive kept under its ``.ozx`` name is a directory plate, not an error."""
    url = write_dir(metadata_only(sample_trees["0.5"]), watched / "plate.ozx")
    before = _listing(watched)
    plate = hcsfs.open_plate(url)
    assert type(plate.fs.source).__name__ == "LocalSource"
    assert sorted(plate.wells) == ["A/1", "A/2", "B/3"]
    empty = watched / "empty.ozx"
    empty.mkdir()
    with pytest.raises(NotAPlateError) as info:
        hcsfs.open_plate(str(empty))
    assert_names(info.value, str(empty), "empty")
    empty.rmdir()
    assert _listing(watched) == before


def test_bad_archive_on_s3_names_the_archive(
    s3: Any, s3_options: dict[str, Any], tmp_path: Path, sample_trees: dict[str, Files]
) -> None:
    for name, make, error, problem in OZX_CASES[:2] + OZX_CASES[4:5]:
        local = make(tmp_path, sample_trees)
        url = f"s3://{BUCKET}/bad-input/{uuid.uuid4().hex}/{name}.ozx"
        s3.put(local, url)
        with pytest.raises(error) as info:
            hcsfs.open_plate(url, storage_options=s3_options)
        assert_names(info.value, url, problem)


# --------------------------------------------------------------------------- escaping keys


ESCAPES = ["../x", "A/../../x", "A/1/../../../x", "./../x", "A/1/0/../../../../x", "..", "\\..\\x"]


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx"])
def test_keys_escaping_the_plate_are_refused(
    backend: str,
    sample_trees: dict[str, Files],
    place: Callable[[str, Files], Target],
    tmp_path: Path,
) -> None:
    (tmp_path / "x").write_bytes(SECRET)  # what "../x" would name next to a dir plate
    target = place(backend, metadata_only(sample_trees["0.5"]))
    fs = target.fs()
    for key in ESCAPES:
        for call in (fs.cat_file, fs.info, fs.ls, fs.find, fs.exists):
            try:
                result = call(key)
            except ValueError as exc:
                assert "inside the plate" in str(exc), (call.__name__, key, exc)
                continue
            except FileNotFoundError:  # pragma: no cover - reported by the assert below
                result = None
            pytest.fail(f"fs.{call.__name__}({key!r}) returned {result!r} instead of ValueError")
    with pytest.raises(ValueError):
        fs.open("../x").read()
    assert fs.cat_file("zarr.json")  # the filesystem still works


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx"])
def test_absolute_keys_stay_inside_the_plate(
    backend: str, sample_trees: dict[str, Files], place: Callable[[str, Files], Target]
) -> None:
    target = place(backend, metadata_only(sample_trees["0.5"]))
    fs = target.fs()
    outside = "/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd"
    with pytest.raises(FileNotFoundError):
        fs.cat_file(outside)
    assert fs.cat_file("/zarr.json") == fs.cat_file("zarr.json")


@pytest.fixture
def symlinked_plate(tmp_path: Path, sample_trees: dict[str, Files]) -> tuple[str, Path]:
    """A full sample plate whose first chunk of A/1/0/0 is a symlink to a file outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    root = Path(write_dir(dict(sample_trees["0.5"]), tmp_path / "plate.ome.zarr"))
    chunk = root / "A/1/0/0/c/0/0/0/0/0"
    assert chunk.exists()
    chunk.unlink()
    chunk.symlink_to(outside / "secret")
    return str(root), outside


def test_symlinked_chunk_outside_the_plate_is_refused(symlinked_plate: tuple[str, Path]) -> None:
    root, _ = symlinked_plate
    fs = HCSFileSystem(fo=root, skip_instance_cache=True)
    key = "A/1/0/0/c/0/0/0/0/0"
    for read in (
        lambda: fs.cat_file(key),
        lambda: fs.cat_file(key, start=0, end=4),
        lambda: fs.open(key).read(),
    ):
        with pytest.raises(PermissionError) as info:
            read()
        assert_names(info.value, key, "outside the plate")
    assert key not in fs.find("A/1/0/0")
    assert all(SECRET not in fs.cat_file(k) for k in fs.find("A/1/0/0"))
    plate = hcsfs.open_plate(root)
    with pytest.raises(PermissionError):
        plate.wells["A/1"].image(0).level(0)[...]
    plate.wells["A/2"].image(0).level(0)[...]  # the rest of the plate still reads


def test_symlinked_directory_and_document_outside_the_plate_are_refused(
    symlinked_plate: tuple[str, Path], sample_trees: dict[str, Files]
) -> None:
    root, outside = symlinked_plate
    # the whole image directory A/2/1 points outside; the well document of B/3 too
    stolen = outside / "image"
    write_dir(reroot(sample_trees["0.5"], "A/2/1/"), stolen)
    image_dir = Path(root) / "A/2/1"
    for child in sorted(image_dir.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    image_dir.rmdir()
    image_dir.symlink_to(stolen, target_is_directory=True)
    well_doc = Path(root) / "B/3/zarr.json"
    (outside / "well.json").write_bytes(well_doc.read_bytes())
    well_doc.unlink()
    well_doc.symlink_to(outside / "well.json")

    fs = HCSFileSystem(fo=root, skip_instance_cache=True)
    assert not any(k.startswith("A/2/1/") for k in fs.find(""))
    assert "B/3/zarr.json" not in fs.find("B/3")
    with pytest.raises(PermissionError):
        fs.cat_file("A/2/1/zarr.json")
    plate = hcsfs.open_plate(root)
    with pytest.raises(PermissionError):
        plate.wells["A/2"].image(1).axes  # noqa: B018
    with pytest.raises(PermissionError):
        plate.wells["B/3"].images  # noqa: B018


def test_plate_root_reached_through_a_symlink_still_works(
    tmp_path: Path, sample_trees: dict[str, Files]
) -> None:
    real = write_dir(metadata_only(sample_trees["0.5"]), tmp_path / "real.ome.zarr")
    link = tmp_path / "link.ome.zarr"
    link.symlink_to(real, target_is_directory=True)
    assert sorted(hcsfs.open_plate(str(link)).wells) == ["A/1", "A/2", "B/3"]


# --------------------------------------------------------------------------- CLI


CLI_CASES = [
    "image-as-plate",
    "malformed-json-open",
    "malformed-json-well",
    "not-utf8-open",
    "rows-not-list",
    "well-rowindex-string",
    "well-path-dotdot",
    "version-9.9-root",
    "axes-int",
    "shape-negative",
    "sharding-configuration-not-object",
    "data-type-unparsable",
    "int-with-5000-digits",
]


def _bad_urls(tmp_path: Path, sample_trees: dict[str, Files]) -> dict[str, str]:
    by_id = {c.id: c for c in CASES}
    urls = {}
    for name in CLI_CASES:
        urls[name] = write_dir(build_case(by_id[name], sample_trees), tmp_path / name)
    urls["empty-dir"] = write_dir({}, tmp_path / "empty")
    urls["missing-path"] = str(tmp_path / "nowhere.ome.zarr")
    urls["random-zip"] = _random_zip(tmp_path, sample_trees)
    urls["truncated-ozx"] = _truncated(0.5)(tmp_path, sample_trees)
    return urls


def test_cli_info_prints_one_error_line(tmp_path: Path, sample_trees: dict[str, Files]) -> None:
    failures = []
    for name, url in _bad_urls(tmp_path, sample_trees).items():
        result = CliRunner().invoke(main, ["info", url])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        ok = (
            result.exit_code == 1
            and len(lines) == 1
            and lines[0].startswith("hcsfs: error:")
            and "Traceback" not in result.output
            and not result.stdout.strip()
        )
        if not ok:
            failures.append(
                f"{name}: exit {result.exit_code}, exception {result.exception!r}, "
                f"stderr {result.stderr!r}"
            )
    assert not failures, "\n".join(failures)


def test_cli_debug_shows_the_traceback(tmp_path: Path, sample_trees: dict[str, Files]) -> None:
    files = metadata_only(dict(sample_trees["0.5"]))
    files["zarr.json"] = BAD_JSON
    url = write_dir(files, tmp_path / "bad.ome.zarr")
    base = [sys.executable, "-c", "from hcsfs.cli import main; main()"]
    plain = subprocess.run([*base, "info", url], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1
    assert plain.stderr.startswith("hcsfs: error: MetadataError: ")
    assert len(plain.stderr.strip().splitlines()) == 1
    assert f"{url}/zarr.json" in plain.stderr
    debug = subprocess.run(
        [*base, "--debug", "info", url], capture_output=True, text=True, timeout=60
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "MetadataError" in debug.stderr
