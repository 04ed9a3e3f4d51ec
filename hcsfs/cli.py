"""The ``hcsfs`` command line: arguments and printing only; the work is done elsewhere.

Exit codes: 0 success, 1 the command failed (bad plate, missing file ...), 2 usage
errors. Errors print as one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hcsfs.errors import HCSError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def storage_options_from(
    endpoint_url: str | None, anon: bool, options: tuple[str, ...]
) -> dict[str, Any]:
    """Storage options from ``--endpoint-url``, ``--anon`` and ``-o key=value`` flags.

    Credentials and region also come from the standard AWS environment variables,
    which s3fs (botocore) reads by itself.
    """
    result: dict[str, Any] = {}
    env_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint_url or env_endpoint:
        result["endpoint_url"] = endpoint_url or env_endpoint
    if anon:
        result["anon"] = True
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="-o")
        result[key] = _parse_value(value)
    return result


def storage_flags(func: F) -> F:
    """Add ``--endpoint-url``, ``--anon`` and ``-o`` to a command."""
    func = click.option(
        "-o",
        "--option",
        "options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A storage option for the target filesystem (repeatable; JSON values allowed).",
    )(func)
    func = click.option("--anon", is_flag=True, help="Anonymous access (public buckets).")(func)
    func = click.option(
        "--endpoint-url", default=None, help="S3-compatible endpoint (e.g. http://127.0.0.1:9000)."
    )(func)
    return func


class HCSGroup(click.Group):
    """A click group that turns expected errors into one readable line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (HCSError, OSError, KeyError, ValueError, RuntimeError) as exc:
            if ctx.params.get("debug") or (ctx.obj or {}).get("debug"):
                raise
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            name = type(exc).__name__
            click.echo(f"hcsfs: error: {name}: {message}", err=True)
            ctx.exit(1)


@click.group(cls=HCSGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="hcsfs")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Open, browse, pack and serve OME-Zarr HCS plates anywhere.

    A plate is a local directory, an fsspec URL (s3://bucket/plate.ome.zarr) or an
    RFC-9 .ozx archive, local or remote.

    \b
    Examples:
      hcsfs demo
      hcsfs info s3://bucket/plate.ome.zarr --endpoint-url http://127.0.0.1:9000
      hcsfs ls plate.ozx A/1
      hcsfs pack plate.ome.zarr plate.ozx
      hcsfs tree plate.ozx
      hcsfs serve plate.ozx --port 8000
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _open(url: str, endpoint_url: str | None, anon: bool, options: tuple[str, ...]) -> Any:
    from hcsfs.plate import open_plate

    return open_plate(url, storage_options=storage_options_from(endpoint_url, anon, options))


@main.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--size", "with_size", is_flag=True, help="Count total bytes (lists the plate).")
@storage_flags
def info(
    url: str,
    as_json: bool,
    with_size: bool,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Summarise the plate at URL.

    \b
    Examples:
      hcsfs info plate.ome.zarr
      hcsfs info s3://bucket/plate.ozx --json
    """
    from hcsfs.summary import format_summary, plate_summary

    summary = plate_summary(_open(url, endpoint_url, anon, options), with_size=with_size)
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@main.command()
@click.argument("url")
@click.argument("path", default="")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show type and size.")
@click.option("-R", "--recursive", is_flag=True, help="List every file below PATH.")
@click.option("--json", "as_json", is_flag=True, help="Print entries as JSON.")
@storage_flags
def ls(
    url: str,
    path: str,
    long_format: bool,
    recursive: bool,
    as_json: bool,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """List PATH inside the plate at URL (plate keys, e.g. A/1/0).

    \b
    Examples:
      hcsfs ls plate.ome.zarr
      hcsfs ls plate.ozx A/1 -l
    """
    fs = _open(url, endpoint_url, anon, options).fs
    entries = list(fs.find(path, detail=True).values()) if recursive else fs.ls(path, detail=True)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        if long_format:
            kind = "d" if entry["type"] == "directory" else "-"
            click.echo(f"{kind} {entry['size']:>12} {entry['name']}")
        else:
            click.echo(entry["name"] + ("/" if entry["type"] == "directory" else ""))


@main.command()
@click.argument("url")
@click.argument("path")
@storage_flags
def cat(
    url: str, path: str, endpoint_url: str | None, anon: bool, options: tuple[str, ...]
) -> None:
    """Write the bytes of PATH inside the plate at URL to standard output.

    \b
    Example:
      hcsfs cat plate.ozx A/1/zarr.json
    """
    fs = _open(url, endpoint_url, anon, options).fs
    click.echo(fs.cat_file(path), nl=False)


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--to-version",
    type=click.Choice(["0.5"]),
    default=None,
    help="Convert an OME-Zarr 0.4 plate's metadata to 0.5 while packing.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@storage_flags
def pack(
    src: str,
    dst: str,
    to_version: str | None,
    progress: bool | None,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Pack the plate SRC into the RFC-9 .ozx archive DST (local or remote).

    \b
    Examples:
      hcsfs pack plate.ome.zarr plate.ozx
      hcsfs pack old-0.4.zarr plate.ozx --to-version 0.5
    """
    from hcsfs.pack import pack as pack_plate

    opts = storage_options_from(endpoint_url, anon, options)
    report = pack_plate(
        src, dst, to_version=to_version, storage_options=opts, dst_storage_options=opts,
        progress=progress,
    )  # fmt: skip
    click.echo(
        f"packed {report.members} entries ({report.data_bytes} data bytes) into "
        f"{report.destination} ({report.archive_bytes} bytes, OME-Zarr {report.version})"
    )


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--overwrite", is_flag=True, help="Replace files already at DST.")
@click.option(
    "--to-version",
    type=click.Choice(["0.5"]),
    default=None,
    help="With an .ozx DST: convert 0.4 metadata to 0.5.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@storage_flags
def cp(
    src: str,
    dst: str,
    overwrite: bool,
    to_version: str | None,
    progress: bool | None,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Copy the plate SRC to DST: directory, S3 or .ozx, either way.

    \b
    Examples:
      hcsfs cp s3://bucket/plate.ome.zarr ./plate.ome.zarr
      hcsfs cp plate.ozx ./unpacked.ome.zarr
    """
    from hcsfs.copy import copy_plate

    opts = storage_options_from(endpoint_url, anon, options)
    report = copy_plate(
        src, dst, storage_options=opts, dst_storage_options=opts, overwrite=overwrite,
        to_version=to_version, progress=progress,
    )  # fmt: skip
    click.echo(f"copied {report}")


@main.command()
@click.argument("url")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@storage_flags
def consolidate(
    url: str,
    progress: bool | None,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Write consolidated metadata for the plate at URL (directory or object store).

    Readers then open the whole plate with one request.

    \b
    Example:
      hcsfs consolidate s3://bucket/plate.ome.zarr
    """
    from hcsfs.write import consolidate as consolidate_plate

    consolidate_plate(
        url, storage_options=storage_options_from(endpoint_url, anon, options), progress=progress
    )
    click.echo(f"consolidated metadata written for {url}")


@main.command()
@click.argument("url")
@click.option("--strict", is_flag=True, help="Also check recommended (SHOULD) rules.")
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
@storage_flags
def validate(
    url: str,
    strict: bool,
    as_json: bool,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Check every document of the plate at URL; exit 1 if any error.

    \b
    Examples:
      hcsfs validate plate.ome.zarr --strict
    """
    from hcsfs.check import issues_as_json, validate_plate_tree

    issues = validate_plate_tree(_open(url, endpoint_url, anon, options), strict=strict)
    errors = [i for i in issues if i.severity == "error"]
    if as_json:
        click.echo(json.dumps({"valid": not errors, "issues": issues_as_json(issues)}, indent=2))
    else:
        for issue in issues:
            click.echo(str(issue))
        click.echo(
            f"{'valid' if not errors else 'INVALID'}: {len(errors)} errors, "
            f"{len(issues) - len(errors)} warnings"
        )
    if errors:
        sys.exit(1)


@main.command()
@click.argument("url")
@click.argument("mountpoint", type=click.Path(file_okay=False))
@storage_flags
def mount(
    url: str, mountpoint: str, endpoint_url: str | None, anon: bool, options: tuple[str, ...]
) -> None:
    """Show the plate at URL as a read-only folder at MOUNTPOINT (FUSE; Ctrl-C unmounts).

    \b
    Example:
      hcsfs mount s3://bucket/plate.ozx /mnt/plate
    """
    from hcsfs.mount import mount as mount_plate

    mount_plate(url, mountpoint, storage_options=storage_options_from(endpoint_url, anon, options))


@main.command()
@click.argument("url")
@click.argument("path", default="")
@click.option("--depth", "-L", type=click.IntRange(min=0), default=None, help="Levels to show.")
@click.option("--arrays", is_flag=True, help="Count each array's keys and bytes (lists them).")
@click.option("--json", "as_json", is_flag=True, help="Print the tree as nested JSON.")
@storage_flags
def tree(
    url: str,
    path: str,
    depth: int | None,
    arrays: bool,
    as_json: bool,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Show the plate at URL (or its node PATH) as a tree: rows, wells, fields, levels, labels.

    Arrays are leaves; their chunks are listed only with --arrays.

    \b
    Examples:
      hcsfs tree plate.ome.zarr
      hcsfs tree s3://bucket/plate.ozx A/1 --depth 2
      hcsfs tree plate.ozx --arrays --json
    """
    from hcsfs.browse import format_tree, plate_tree

    fs = _open(url, endpoint_url, anon, options).fs
    result = plate_tree(fs, path, depth=depth, arrays=arrays)
    if as_json:
        click.echo(json.dumps({"url": url, **result}, indent=2))
    else:
        click.echo(format_tree(result, f"{url}/{path}" if path else url))


@main.command()
@click.argument("url")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any)."
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log each request.")
@storage_flags
def serve(
    url: str,
    host: str,
    port: int,
    quiet: bool,
    endpoint_url: str | None,
    anon: bool,
    options: tuple[str, ...],
) -> None:
    """Serve the plate at URL read-only over HTTP, as a plain OME-Zarr (Ctrl-C stops).

    Viewers and zarr clients open http://HOST:PORT/ as the plate: byte ranges, CORS
    and consolidated metadata (so the plate opens with one request) included.

    \b
    Examples:
      hcsfs serve plate.ozx --port 8000
      hcsfs serve s3://bucket/plate.ome.zarr --anon --host 0.0.0.0
    """
    import logging

    from hcsfs.serve import serve as serve_plate

    if not quiet:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access = logging.getLogger("hcsfs.serve.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
    serve_plate(
        url, host=host, port=port, storage_options=storage_options_from(endpoint_url, anon, options)
    )


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the sample plate (default: a temporary directory).",
)
@click.option(
    "--version",
    "version",
    type=click.Choice(["0.4", "0.5"]),
    default="0.5",
    help="OME-Zarr version of the sample plate.",
)
def demo(directory: str | None, version: str) -> None:
    """Write a small sample plate, pack it to .ozx, open it through hcsfs and summarise it."""
    import numpy as np

    from hcsfs.pack import pack as pack_plate
    from hcsfs.plate import open_plate
    from hcsfs.sample import write_sample_plate
    from hcsfs.summary import format_summary, plate_summary

    base = directory or tempfile.mkdtemp(prefix="hcsfs-demo-")
    os.makedirs(base, exist_ok=True)
    plate_dir = os.path.join(base, "sample.ome.zarr")
    archive = os.path.join(base, "sample.ozx")
    spec = write_sample_plate(plate_dir, version=version)
    click.echo(
        f"wrote a sample plate ({len(spec.wells)} wells x {spec.fields} fields) to {plate_dir}"
    )
    report = pack_plate(plate_dir, archive, to_version="0.5", progress=False)
    click.echo(f"packed it into {archive} ({report.archive_bytes} bytes)\n")
    plate = open_plate(archive)
    click.echo(format_summary(plate_summary(plate)))
    image = plate.well("A", 1).image(0)
    data = np.asarray(image.level(0)[...])
    click.echo(
        f"\nread field A/1/0 level 0: shape {data.shape}, dtype {data.dtype}, "
        f"mean {data.mean():.1f}, min {data.min()}, max {data.max()}"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
