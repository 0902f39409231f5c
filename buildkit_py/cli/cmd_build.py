"""pybuild build: build an image from a Dockerfile."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError, ContextError
from ..fs.output import check_output_path, write_output
from .common import add_transport_options, open_store, transport_options

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..builder import BuildOptions, BuildResult
    from ..digest import Digest
    from ..image.manifest import Manifest
    from ..store import Store


def _build_arg(text: str) -> tuple[str, str | None]:
    key, equals, value = text.partition("=")
    if not key.strip():
        raise argparse.ArgumentTypeError(f"invalid build-arg {text!r}: the name before '=' is empty")
    return key, value if equals else None


def _label(text: str) -> tuple[str, str]:
    """`--label k=v`, or `--label k` for an empty value, as Docker reads it."""
    key, _, value = text.partition("=")
    if not key.strip():
        raise argparse.ArgumentTypeError(f"invalid label {text!r}: the name before '=' is empty")
    return key, value


def _add_host(text: str) -> tuple[str, str]:
    """`--add-host name:address`, the address an IPv4 or IPv6 address or `host-gateway` (Docker's ValidateExtraHost)."""
    # lazy: only --add-host parses addresses
    import ipaddress

    from ..exec.network import HOST_GATEWAY

    name, colon, address = text.partition(":")
    if not colon or not name or any(character.isspace() for character in name):
        raise argparse.ArgumentTypeError(f"bad format for add-host: {text!r} (expected NAME:ADDRESS)")
    if address != HOST_GATEWAY:
        try:
            address = str(ipaddress.ip_address(address.strip("[]")))
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid IP address in add-host: {address!r}") from None
    return name, address


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs takes a whole number of steps, not {text!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be at least 1, not {jobs}")
    return jobs


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a context folder, reusing every step already built.",
    )
    parser.add_argument("context", help="the build context folder; - reads a tar (or only a Dockerfile) from stdin")
    parser.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] for the image (repeatable)")
    parser.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")
    parser.add_argument(
        "--build-arg", action="append", default=[], type=_build_arg, help="set a build-time variable K=V"
    )
    parser.add_argument("--target", help="build this stage and what it needs, nothing else")
    parser.add_argument(
        "--label", action="append", default=[], type=_label, metavar="KEY=VALUE", help="add a label to the image"
    )
    parser.add_argument(
        "--pull", action="store_true", help="always pull the base images again, even when the store has them"
    )
    parser.add_argument(
        "--add-host",
        action="append",
        default=[],
        type=_add_host,
        metavar="NAME:ADDRESS",
        help="add a line to RUN's /etc/hosts; ADDRESS may be host-gateway (the host)",
    )
    parser.add_argument(
        "--platform", help="the platform to build for: pybuild builds linux/amd64 only (any other is refused)"
    )
    parser.add_argument("--no-cache", action="store_true", help="run every step, ignoring the build cache")
    parser.add_argument(
        "--no-cache-filter",
        action="append",
        default=[],
        metavar="STAGE",
        help="ignore the cache for this stage and the steps that read it",
    )
    parser.add_argument(
        "--network",
        choices=("default", "none", "host"),
        default="default",
        help="RUN's network: its own namespace with outbound access (default), none, or the host's (not isolated)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="ENTITLEMENT",
        help="let the Dockerfile use network.host (RUN --network=host) or security.insecure (RUN --security=insecure)",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="id=ID[,src=FILE|env=VAR]",
        help="a secret RUN --mount=type=secret can read (repeatable); never stored in the image or the cache",
    )
    parser.add_argument(
        "--ssh",
        action="append",
        default=[],
        metavar="ID[=SOCKET|KEY[,KEY]]",
        help="an ssh agent RUN --mount=type=ssh can use (repeatable): default is $SSH_AUTH_SOCK; key files get a "
        "private agent",
    )
    parser.add_argument(
        "--progress", choices=("auto", "plain", "tty", "quiet"), default="auto", help="how to show progress"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    parser.add_argument("--iidfile", help="write the image id to this file")
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        help="steps run at once (default: 2 per CPU, at least 4; CPU-bound work stays at one per CPU)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="say for every step whether it is cached, and why not, without building"
    )
    parser.add_argument(
        "-o", "--output", action="append", default=[], help="also export: type=docker|oci|tar|local,dest=PATH"
    )
    parser.add_argument("--graph", metavar="FILE", help="write the build graph with cache states: FILE.dot or FILE.svg")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only run BuildKit's Dockerfile checks (lint rules) and report; exit 1 when something is found",
    )
    parser.add_argument(
        "--build-context",
        action="append",
        default=[],
        metavar="NAME=DIR|docker-image://REF",
        help="a named context for FROM NAME, COPY --from=NAME and RUN --mount from=NAME (repeatable)",
    )
    parser.add_argument(
        "--cache-from",
        action="append",
        default=[],
        metavar="SPEC",
        help="also take cache records from type=local,src=DIR | type=registry,ref=REF | REF (repeatable)",
    )
    parser.add_argument(
        "--cache-to",
        action="append",
        default=[],
        metavar="SPEC",
        help="export the cache: type=local,dest=DIR | type=registry,ref=REF | type=inline; "
        "mode=min|max, compression=gzip|zstd|uncompressed, ignore-error=true, cache-mounts=true (repeatable)",
    )
    parser.add_argument(
        "--metadata-file",
        metavar="FILE",
        help="write the config digest, manifest digest and layers as JSON (BuildKit's keys)",
    )
    parser.add_argument("--push", action="store_true", help="push every tag to its registry after the build")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="build again without the cache and fail, naming the first difference, unless the image is the same",
    )
    add_transport_options(parser)
    parser.set_defaults(func=run)


def _resolved_build_args(pairs: list[tuple[str, str | None]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in pairs:
        if value is None:
            if key in os.environ:
                values[key] = os.environ[key]
        else:
            values[key] = value
    return values


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """The BuildOptions the flags of `build` (or of a command sharing some of them, such as `graph`) ask for.
    SOURCE_DATE_EPOCH in the environment is a build arg unless --build-arg gives it, as buildx passes it on.
    A flag's parser is imported only when the flag is given: a plain rebuild loads none of them."""
    from ..options import SOURCE_DATE_EPOCH, BuildOptions  # lazy: `build --help` and a flag error need no options

    build_args = _resolved_build_args(args.build_arg)
    if SOURCE_DATE_EPOCH not in build_args and os.environ.get(SOURCE_DATE_EPOCH):
        build_args[SOURCE_DATE_EPOCH] = os.environ[SOURCE_DATE_EPOCH]
    cache_from: tuple[Any, ...] = ()
    cache_to: tuple[Any, ...] = ()
    if getattr(args, "cache_from", ()) or getattr(args, "cache_to", ()):
        from ..remotecache.spec import parse_cache_from, parse_cache_to  # lazy: only when the flag is given

        cache_from = tuple(parse_cache_from(spec) for spec in getattr(args, "cache_from", ()))
        cache_to = tuple(parse_cache_to(spec) for spec in getattr(args, "cache_to", ()))
    build_contexts: dict[str, Any] = {}
    if getattr(args, "build_context", ()):
        from ..frontend.named_contexts import parse_build_contexts  # lazy: only when the flag is given

        build_contexts = dict(parse_build_contexts(args.build_context))
    secrets: tuple[Any, ...] = ()
    ssh: tuple[Any, ...] = ()
    if getattr(args, "secret", ()) or getattr(args, "ssh", ()):
        from ..session import parse_secret, parse_ssh  # lazy: only when the flag is given

        secrets = tuple(parse_secret(text) for text in getattr(args, "secret", ()))
        ssh = tuple(parse_ssh(text) for text in getattr(args, "ssh", ()))
    allow = frozenset(item.strip() for value in getattr(args, "allow", []) for item in value.split(",") if item.strip())
    return BuildOptions(
        context=Path(args.context),
        dockerfile=None if args.file in (None, "-") else args.file,
        dockerfile_text=sys.stdin.buffer.read() if args.file == "-" else None,
        tags=tuple(getattr(args, "tag", ())),
        target=args.target,
        build_args=build_args,
        no_cache=getattr(args, "no_cache", False),
        no_cache_stages=tuple(getattr(args, "no_cache_filter", ())),
        network=args.network,
        allow=allow,
        jobs=getattr(args, "jobs", None),
        labels=dict(getattr(args, "label", ())),
        pull=getattr(args, "pull", False),
        add_hosts=tuple(getattr(args, "add_host", ())),
        platform=getattr(args, "platform", None) or "",
        build_contexts=build_contexts,
        cache_from=cache_from,
        cache_to=cache_to,
        # The registry client (httpx) is imported only when a cache needs it: a plain rebuild stays quick.
        registry=transport_options(args) if hasattr(args, "insecure") and (cache_from or cache_to) else None,
        secrets=secrets,
        ssh=ssh,
    )


def _check_outputs(args: argparse.Namespace) -> None:
    """Every file the build will write, checked before it runs, so a typo does not cost the build."""
    if args.iidfile:
        check_output_path(args.iidfile, "--iidfile")
    if args.graph:
        check_output_path(args.graph, "--graph file")
    if getattr(args, "metadata_file", None):
        check_output_path(args.metadata_file, "--metadata-file")
    if args.output:
        from ..image.export import check_output_spec  # lazy: only with --output

        for spec in args.output:
            check_output_spec(spec)


def run(args: argparse.Namespace) -> int:
    if args.context == "-" and args.file == "-":
        raise ContextError("invalid argument: can't use stdin for both build context and dockerfile")
    _check_outputs(args)
    # Closed here, not at the interpreter's teardown, which `pybuild build` skips (cli/main.py): closing the last
    # connection checkpoints the log onto the database, which makes this build's records durable.
    with open_store(args) as store:
        return _run_with(args, store)


def _run_with(args: argparse.Namespace, store: Store) -> int:
    if args.context != "-":
        return _build(args, store, options_from_args(args))
    from ..stdin_context import context_from_stream  # lazy: only a context on stdin

    with store.temp_dir("stdin-context") as work:
        received = context_from_stream(sys.stdin.buffer, work)
        options = replace(options_from_args(args), context=received.folder)
        if args.file and not Path(args.file).is_absolute():
            options = replace(options, dockerfile=received.folder / args.file)  # -f names a file in the tar
        if received.dockerfile_text is not None:
            options = replace(options, dockerfile=None, dockerfile_text=received.dockerfile_text)
        return _build(args, store, options)


def _noop(args: argparse.Namespace, store: Store, options: BuildOptions) -> bool:
    """A rebuild that changes nothing, answered from the last build's fingerprint (fastpath.py) without loading the
    build machinery; False when the build must go the whole way."""
    if getattr(args, "check", False) or args.explain or args.graph or args.push or args.verify:
        return False
    from ..fastpath import fingerprint, lookup  # lazy: `build --help` and a flag error load no build path

    found = fingerprint(options, keep=True)  # a miss builds next, with this fingerprint
    hit = lookup(store, found) if found is not None else None
    if hit is None:
        return False
    # lazy: only a hit needs these here (a miss loads them with the builder)
    from ..digest import Digest
    from ..reference import parse_reference
    from ..solver.progress import BuildMessage, StepCached
    from .progress import make_progress

    progress = make_progress("quiet" if args.quiet else args.progress)
    for message in hit.messages:
        progress(BuildMessage(message))
    for number, name, op in hit.steps:
        progress(StepCached(number, name, Digest.parse(op)))
    image_id = Digest.parse(hit.image_id)
    tags = []
    for tag in options.tags:
        tags.append(store.tags.set(parse_reference(tag).familiar, image_id))
    if args.output:
        from ..image.export import export_image  # lazy: only with --output

        for spec in args.output:
            export_image(store, image_id, spec)
    if args.metadata_file:
        from ..image.build_metadata import build_metadata, write_metadata_file  # lazy: only with --metadata-file

        write_metadata_file(Path(args.metadata_file), build_metadata(store, image_id, tuple(tags), None))
    if args.iidfile:
        write_output(args.iidfile, str(image_id), "--iidfile")
    _report(args, image_id, tags)
    return True


def _report(args: argparse.Namespace, image_id: Digest, tags: Sequence[str]) -> None:
    if args.quiet:
        print(image_id)
        return
    print(f"writing image {image_id}", file=sys.stderr)
    for tag in tags:
        print(f"naming to {tag}", file=sys.stderr)
    print(f"Successfully built {image_id.short}")
    for tag in tags:
        print(f"Successfully tagged {tag}")


def _build(args: argparse.Namespace, store: Store, options: BuildOptions) -> int:
    if _noop(args, store, options):
        return 0
    if not (getattr(args, "check", False) or args.explain) and os.geteuid() == 0:
        from ..exec.forkserver import prestart  # lazy: the sandbox's fork server only once the no-op path missed

        prestart()  # the sandbox's fork server starts while the frontend is loaded and the Dockerfile read
    # lazy: the build machinery only once the no-op path missed (see _noop)
    from .. import builder
    from .progress import make_progress

    if getattr(args, "check", False):
        return _check(options, store)
    if args.explain:
        for number, name, state in builder.explain(options, store=store):
            print(f"#{number} {name}: {state}")
        return 0
    progress = make_progress("quiet" if args.quiet else args.progress)
    result = builder.build(options, progress=progress, store=store)
    if args.output:
        from ..image.export import export_image  # lazy: only with --output
        from .progress import TtyProgress
        from .transfers import TransferView

        with TransferView(bars=isinstance(progress, TtyProgress)) as view:
            for spec in args.output:
                export_image(store, result.image_id, spec, view)
    if args.graph:
        from ..solver.dot import solved_dot, write_graph  # lazy: only with --graph

        write_graph(Path(args.graph), solved_dot(result.plan.graph.subgraph_for([result.plan.target]), result.stats))
    pushed = _push(args, store, result.tags) if args.push else None
    if args.metadata_file:
        from ..image.build_metadata import build_metadata, write_metadata_file  # lazy: only with --metadata-file

        metadata = build_metadata(store, result.image_id, result.tags, pushed)
        write_metadata_file(Path(args.metadata_file), metadata)
    if args.iidfile:
        write_output(args.iidfile, str(result.image_id), "--iidfile")
    _report(args, result.image_id, result.tags)
    status = 0
    for report in result.cache_exports:
        if report.error and not report.spec.ignore_error:
            print(f"error: exporting cache to {report.spec} failed: {report.error}", file=sys.stderr)
            status = 1
    if args.verify:
        status = max(status, _verify(options, store, result, progress))
    return status


def _push(args: argparse.Namespace, store: Store, tags: tuple[str, ...]) -> Manifest | None:
    """Push every tag; the manifest of the last push (all tags name the same image, so the same manifest)."""
    from ..registry.push import push_image  # lazy: only --push loads the registry client (httpx)

    if not tags:
        raise BuildError("--push needs a tag (-t REGISTRY/NAME:TAG)")
    manifest = None
    for tag in tags:
        result = push_image(store, tag, options=transport_options(args))
        print(f"pushed {tag}: {result.manifest_digest}", file=sys.stderr)
        manifest = result.manifest
    return manifest


def _verify(options: BuildOptions, store: Store, result: BuildResult, progress: Any) -> int:
    # lazy: only --verify rebuilds and compares
    from ..builder import rebuild_without_cache
    from ..digest import digest_bytes
    from ..reproduce import compare_images

    print("verifying: building again without the cache", file=sys.stderr)
    again = rebuild_without_cache(options, store=store, progress=progress)
    first_id = digest_bytes(result.config.to_bytes(), "sha256")
    second_id = digest_bytes(again.to_bytes(), "sha256")
    verification = compare_images(store, result.config, first_id, again, second_id)
    print(verification, file=sys.stderr)
    return 0 if verification.reproducible else 1


def _check(options: BuildOptions, store: Any) -> int:
    """`--check`: the findings, then a summary line; 1 when there is a finding, as `docker build --check`."""
    from ..checking import check_options, format_warning_detail  # lazy: only --check

    result = check_options(options, store)
    for warning in result.warnings:
        print(format_warning_detail(warning) + "\n")
    count = len(result.warnings)
    if result.error is not None:
        raise result.error
    if count == 0:
        print("Check complete, no warnings found.")
        return 0
    print(f"Check complete, {count} warning{'s have' if count != 1 else ' has'} been found!")
    failure = result.failure
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
    return 1
