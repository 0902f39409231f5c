"""What heredocs become when a step runs: BuildKit's `dispatchRun` and the inline sources of `dispatchCopy`.

- `RUN <<EOF` (the heredoc is the whole command): the body, tabs stripped for `<<-`, is the shell's command; a body
  starting with `#!` is instead mounted read-only at /dev/pipes/EOF, mode 0755, and run as a program, so its
  interpreter reads it.
- `RUN cmd <<EOF ...`, or several heredocs: the command and every body followed by its delimiter go to the shell
  as one script, which does the redirections itself (`<<-` included).
- `COPY <<EOF /dest`: the body (tabs stripped for `<<-`; variables expanded unless the delimiter was quoted) is a
  file named EOF, mode 0644, owned by root, copied like any source.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..solver.ops import INLINE_SCRIPT_DIR, InlineFile, InlineSource
from .instructions import FileInstruction, Run
from .parser import chomp_heredoc, parse_heredoc_word
from .shell import ShellLexer

__all__ = ["HeredocError", "inline_sources", "run_command"]


class HeredocError(ValueError):
    """A heredoc cannot be used as written; the caller adds the location."""


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _file_name(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise HeredocError(f"heredoc name {name!r} cannot be used as a file name")
    return name


def run_command(run: Run) -> tuple[tuple[str, ...], tuple[InlineFile, ...]]:
    """The command a RUN runs (before SHELL is prepended) and the scripts to mount under /dev/pipes."""
    if not run.heredocs:
        return run.command, ()
    if len(run.command) != 1 or not run.prepend_shell:
        raise HeredocError(f"parsing produced an invalid run command: {list(run.command)}")
    if parse_heredoc_word(run.command[0]) is not None:
        first = run.heredocs[0]
        data = chomp_heredoc(first.data) if first.chomp else first.data
        if data.startswith("#!"):
            script = InlineFile(name=_file_name(first.name), data=_encoded(data), mode=0o755)
            return (f"{INLINE_SCRIPT_DIR}/{script.name}",), (script,)
        return (data,), ()
    script_text = run.command[0] + "".join(f"\n{doc.data}{doc.name}" for doc in run.heredocs)
    return (script_text,), ()


_RAW_LEXER = ShellLexer("\\", process_quotes=False)


def inline_sources(instruction: FileInstruction, env: Mapping[str, str]) -> tuple[InlineSource, ...]:
    """One source per heredoc of COPY/ADD (two may share a name), expanded against `env` unless the delimiter was
    quoted. BuildKit expands a body with a lexer of its own: escape `\\` whatever the Dockerfile's escape token,
    quotes kept as they are."""
    sources = []
    for source in instruction.inline_sources:
        data = _RAW_LEXER.process_word(source.data, env) if source.expand else source.data
        sources.append(InlineSource(files=(InlineFile(name=_file_name(source.name), data=_encoded(data)),)))
    return tuple(sources)
