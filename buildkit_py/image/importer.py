"""`pybuild import`: a root filesystem tarball becomes a one-layer image, like `docker import`.

The tar (plain, gzip, zstd, bzip2 or xz) is the layer as it is: its uncompressed bytes are kept and named by their
sha256, and unpacked (as root: device nodes, owners, setuid bits kept) into the layer's snapshot. `--change` lines are
Dockerfile instructions, parsed by the project's Dockerfile parser and applied to an empty config with the
instructions Docker allows there (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
WORKDIR); words are expanded against the config's ENV as Docker does.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..digest import Digest
from ..errors import InstructionError
from .config import ContainerConfig, HistoryEntry, ImageConfig
from .ingest import IngestBatch

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["ALLOWED_CHANGES", "apply_changes", "import_rootfs"]

ALLOWED_CHANGES = frozenset(
    {"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal", "user", "volume", "workdir"}
)
_DEFAULT_SHELL = ("/bin/sh", "-c")
_PORT = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


def _architecture() -> str:
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _ports(text: str) -> list[str]:
    port, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    match = _PORT.fullmatch(port)
    if protocol not in _PROTOCOLS or match is None:
        raise InstructionError(f"invalid port for EXPOSE: {text}")
    start, end = int(match.group(1)), int(match.group(2) or match.group(1))
    if end < start or end > 65535:
        raise InstructionError(f"invalid port for EXPOSE: {text}")
    return [f"{number}/{protocol}" for number in range(start, end + 1)]


def apply_changes(config: ContainerConfig, changes: Sequence[str]) -> ContainerConfig:
    """The config with each change (a Dockerfile instruction) applied, in order."""
    from ..frontend.convert import node_to_instruction
    from ..frontend.instructions import (
        Cmd,
        Entrypoint,
        Env,
        Expose,
        Healthcheck,
        Label,
        Onbuild,
        StopSignal,
        User,
        Volume,
        Workdir,
    )
    from ..frontend.parser import parse_dockerfile
    from ..frontend.shell import ShellLexer

    if not changes:
        return config
    parsed = parse_dockerfile("\n".join(changes), filename="--change")
    lexer = ShellLexer(parsed.escape_token)
    for node in parsed.nodes:
        if node.keyword not in ALLOWED_CHANGES:
            raise InstructionError(f"{node.keyword.upper()} is not a valid change command")
        instruction = node_to_instruction(node, "--change")
        env = config.env_map()
        instruction = instruction.expand(lambda word, env=env: lexer.process_word(word, env))  # type: ignore[misc]
        shell = config.shell if config.shell is not None else _DEFAULT_SHELL
        if isinstance(instruction, Cmd):
            command = instruction.command if not instruction.prepend_shell else (*shell, *instruction.command)
            config = replace(config, cmd=command)
        elif isinstance(instruction, Entrypoint):
            command = instruction.command if not instruction.prepend_shell else (*shell, *instruction.command)
            config = replace(config, entrypoint=command)
        elif isinstance(instruction, Env):
            for key, value in instruction.pairs:
                config = config.with_env(key, value)
        elif isinstance(instruction, Label):
            for key, value in instruction.pairs:
                config = config.with_label(key, value)
        elif isinstance(instruction, Expose):
            ports = {port for text in instruction.ports for port in _ports(text)}
            config = replace(config, exposed_ports=tuple(sorted(set(config.exposed_ports) | ports)))
        elif isinstance(instruction, Volume):
            config = replace(config, volumes=tuple(sorted(set(config.volumes) | set(instruction.paths))))
        elif isinstance(instruction, User):
            config = replace(config, user=instruction.user)
        elif isinstance(instruction, Workdir):
            config = replace(config, working_dir=posixpath.join(config.working_dir or "/", instruction.path))
        elif isinstance(instruction, StopSignal):
            config = replace(config, stop_signal=instruction.signal)
        elif isinstance(instruction, Healthcheck):
            config = replace(config, healthcheck=instruction.healthcheck)
        elif isinstance(instruction, Onbuild):
            config = replace(config, on_build=(*config.on_build, instruction.expression))
    return config


def import_rootfs(
    store: Store,
    source: Path | str | BinaryIO,
    name: str | None = None,
    changes: Sequence[str] = (),
    message: str = "",
) -> Digest:
    """Store the tarball as a one-layer image (tagged `name` when given); returns the image id."""
    from ..store import normalize_tag

    tag = normalize_tag(name) if name else None
    config = apply_changes(ContainerConfig(), changes)
    if isinstance(source, str):
        source = Path(source)
    origin = str(source) if isinstance(source, Path) else "-"
    with store.temp_dir("import") as work:
        batch = IngestBatch(store, work)
        if isinstance(source, Path):
            with open(source, "rb") as stream:
                diff_id = batch.add_layer_stream(stream, origin)
        else:
            diff_id = batch.add_layer_stream(source, origin)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        image = ImageConfig(
            config=config,
            diff_ids=(diff_id,),
            history=(HistoryEntry(created=created, created_by="", comment=message or f"Imported from {origin}"),),
            architecture=_architecture(),
            os="linux",
            created=created,
        )
        batch.add_image(image.to_bytes(), [tag] if tag else [])
        batch.commit()
    return batch.image_ids[0]
