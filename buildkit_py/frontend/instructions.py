"""Typed Dockerfile instructions: one frozen dataclass per instruction (BuildKit `instructions/commands.go`).

An instruction holds its arguments as written (quotes of words still in place for the instructions Docker
expands); `expand(word_expander)` returns a new instruction with variables substituted and quotes removed, using
one environment for the whole instruction, so every reference sees the values from before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, Self

from ..errors import SourceLocation
from ..image.config import Healthcheck as HealthcheckConfig

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "InlineFile",
    "Instruction",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "Shell",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "WordExpander",
    "Workdir",
]

WordExpander = Callable[[str], str]


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base of every instruction: where it stands in the Dockerfile, original text included."""

    keyword: ClassVar[str] = ""
    location: SourceLocation

    def expand(self, expand_word: WordExpander) -> Self:
        """A copy with variables expanded; instructions Docker does not expand return themselves."""
        return self


def _pairs(pairs: tuple[tuple[str, str], ...], expand_word: WordExpander) -> tuple[tuple[str, str], ...]:
    return tuple((expand_word(key), expand_word(value)) for key, value in pairs)


@dataclass(frozen=True)
class InlineFile:
    """A heredoc body: `name` is its delimiter word (the file name for COPY/ADD), `data` the lines up to it.

    `chomp` is `<<-` (leading tabs are stripped where BuildKit strips them); `expand` is false when any part of
    the delimiter was quoted (`<<"EOF"`, `<<'EOF'`), and then COPY/ADD write the body as is."""

    name: str
    data: str
    chomp: bool = False
    expand: bool = True


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    """FROM [--platform=<platform>] <image> [AS <name>]"""

    keyword: ClassVar[str] = "FROM"
    base_name: str
    stage_name: str = ""
    platform: str = ""

    def expand(self, expand_word: WordExpander) -> Self:
        platform = expand_word(self.platform) if self.platform else ""
        return replace(self, base_name=expand_word(self.base_name), platform=platform)


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """RUN [--mount=<options>]... [--network=default|none|host] [--security=sandbox|insecure] <command>
    RUN [...] ["executable", "arg", ...]  (exec form)

    `mounts` are the `--mount` values as written; they are expanded and checked when the step is dispatched
    (frontend/runmount.py)."""

    keyword: ClassVar[str] = "RUN"
    command: tuple[str, ...]
    prepend_shell: bool
    network: str = ""
    security: str = ""
    heredocs: tuple[InlineFile, ...] = ()
    mounts: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FileInstruction(Instruction):
    """What COPY and ADD share: sources, a destination, an owner and a mode for what they write, whether the layer
    is linked (`--link`: made on an empty tree and stacked on the stage), and `--exclude` patterns."""

    sources: tuple[str, ...]
    dest: str
    chown: str = ""
    chmod: str = ""
    link: bool = False
    exclude: tuple[str, ...] = ()
    inline_sources: tuple[InlineFile, ...] = ()  # `<<EOF` sources, written as files named after the heredoc

    def expand(self, expand_word: WordExpander) -> Self:
        # Docker 20.10's classic builder expands --chown but not --from; BuildKit expands --chmod too, and does not
        # expand --exclude.
        return replace(
            self,
            sources=tuple(expand_word(source) for source in self.sources),
            dest=expand_word(self.dest),
            chown=expand_word(self.chown) if self.chown else "",
            chmod=expand_word(self.chmod) if self.chmod else "",
        )


@dataclass(frozen=True, kw_only=True)
class Copy(FileInstruction):
    """COPY [--from=<stage|index|image>] [--chown=<user>[:<group>]] [--chmod=<mode>] [--link] [--parents]
    [--exclude=<pattern>...] <src>... <dest>  (also the JSON form)"""

    keyword: ClassVar[str] = "COPY"
    from_: str = ""
    parents: bool = False


@dataclass(frozen=True, kw_only=True)
class Add(FileInstruction):
    """ADD [--chown=<user>[:<group>]] [--chmod=<mode>] [--link] [--exclude=<pattern>...] [--checksum=<digest>]
        [--keep-git-dir[=<bool>]] <src>... <dest>
    (local archives are unpacked; a URL is downloaded, a git URL cloned; also the JSON form)"""

    keyword: ClassVar[str] = "ADD"
    checksum: str = ""
    keep_git_dir: bool | None = None  # None: not given (a `?keep-git-dir=` in the URL may say)

    def expand(self, expand_word: WordExpander) -> Self:
        expanded = super().expand(expand_word)
        return replace(expanded, checksum=expand_word(self.checksum) if self.checksum else "")


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    """ENV <key>=<value> ...  |  ENV <key> <value>"""

    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, pairs=_pairs(self.pairs, expand_word))


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """ARG <name>[=<default>] ...  (a name without default has value None)"""

    keyword: ClassVar[str] = "ARG"
    pairs: tuple[tuple[str, str | None], ...]

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(
            self,
            pairs=tuple((expand_word(key), None if value is None else expand_word(value)) for key, value in self.pairs),
        )


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    """LABEL <key>=<value> ..."""

    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, pairs=_pairs(self.pairs, expand_word))


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    """EXPOSE <port>[/<protocol>] ...  (a port may be a range: 8000-8002/udp)"""

    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, ports=tuple(expand_word(port) for port in self.ports))


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    """VOLUME ["/path", ...]  |  VOLUME /path ..."""

    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, paths=tuple(expand_word(path) for path in self.paths))


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    """USER <user>[:<group>]"""

    keyword: ClassVar[str] = "USER"
    user: str

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, user=expand_word(self.user))


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    """WORKDIR <path>  (relative to the previous WORKDIR)"""

    keyword: ClassVar[str] = "WORKDIR"
    path: str

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, path=expand_word(self.path))


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    """CMD ["executable", "arg", ...]  |  CMD command text (run by SHELL)"""

    keyword: ClassVar[str] = "CMD"
    command: tuple[str, ...]
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    """ENTRYPOINT ["executable", "arg", ...]  |  ENTRYPOINT command text (run by SHELL)"""

    keyword: ClassVar[str] = "ENTRYPOINT"
    command: tuple[str, ...]
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    """SHELL ["executable", "arg", ...]  (JSON form only)"""

    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--retries=N] CMD <command>  |  HEALTHCHECK NONE"""

    keyword: ClassVar[str] = "HEALTHCHECK"
    healthcheck: HealthcheckConfig


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    """STOPSIGNAL <signal>  (a name such as SIGTERM, or a number)"""

    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str

    def expand(self, expand_word: WordExpander) -> Self:
        return replace(self, signal=expand_word(self.signal))


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """ONBUILD <instruction>  (stored as text, run when an image is built FROM this one)"""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """MAINTAINER <name>  (deprecated; sets the image's author)"""

    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True)
class Stage:
    """One FROM and the instructions up to the next FROM; `index` counts stages from 0."""

    index: int
    source: From
    commands: tuple[Instruction, ...]

    @property
    def name(self) -> str:
        return self.source.stage_name
