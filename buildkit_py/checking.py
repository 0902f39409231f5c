"""`check_options()`: BuildKit's lint rules over a build's Dockerfile, the library call behind `pybuild build --check` and
the warnings a build prints. Base images are looked up in the store only (a check never pulls): one that is not
there is taken to set nothing but PATH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .context.dockerignore import load_ignore_rules
from .errors import DockerfileError, ImageNotFound, StoreError
from .frontend.lint import ImageFacts, LintConfig, LintWarning, file_config, lint_dockerfile, violation
from .frontend.parser import parse_dockerfile
from .frontend.platforms import normalize_platform
from .frontend.syntax import check_syntax
from .image.stored import image_config
from .options import read_dockerfile

if TYPE_CHECKING:
    from .options import BuildOptions
    from .store import Store

__all__ = ["CheckResult", "check_options", "format_warning", "format_warning_detail"]


@dataclass(frozen=True)
class CheckResult:
    warnings: tuple[LintWarning, ...]
    config: LintConfig
    error: DockerfileError | None = None  # what stops a build of this Dockerfile before any step runs

    @property
    def failure(self) -> str | None:
        """BuildKit's "lint violation found for rules: ..." when `error=true` and a rule was reported."""
        return violation((warning.rule for warning in self.warnings), self.config)


def _image_facts(store: Store, name: str) -> ImageFacts | None:
    try:
        image_id = store.resolve(name)
        config = image_config(store, image_id)
    except (ImageNotFound, StoreError, ValueError):
        return None
    variant = f"/{config.variant}" if config.variant else ""
    platform = f"{config.os or 'linux'}/{config.architecture or 'amd64'}{variant}"
    env = tuple((key, value) for key, _, value in (entry.partition("=") for entry in config.config.env))
    return ImageFacts(
        env=env,
        shell=bool(config.config.shell),
        platform=normalize_platform(platform) or platform,
    )


def check_options(options: BuildOptions, store: Store) -> CheckResult:
    """Lint the Dockerfile of a build (its build args, .dockerignore and target count), building nothing."""
    context = options.context.resolve()
    data, dockerfile_path, name = read_dockerfile(context, options.dockerfile, options.dockerfile_text)
    parsed = parse_dockerfile(data, name)
    check_syntax(parsed, options.build_args)
    config = file_config(parsed, options.build_args)
    ignore = load_ignore_rules(context, dockerfile_path) if context.is_dir() else None
    warnings, error = lint_dockerfile(
        parsed,
        config,
        build_args=options.build_args,
        image_facts=lambda base: _image_facts(store, base),
        ignore=ignore,
        target=options.target or "",
    )
    return CheckResult(warnings=warnings, config=config, error=error)


def format_warning(warning: LintWarning) -> str:
    """One line, as a build prints it: `WARNING: Dockerfile:2: FromAsCasing: 'as' and 'FROM' keywords' ...`."""
    return f"WARNING: {warning.location}: {warning.rule}: {warning.message}"


def format_warning_detail(warning: LintWarning) -> str:
    """The report of `--check`: the rule and its link, the message, the place and its source lines."""
    lines = [f"WARNING: {warning.rule}" + (f" - {warning.url}" if warning.url else "")]
    lines.append(warning.description)
    lines.append(f"{warning.location}: {warning.message}")
    if warning.location.text:
        for offset, text in enumerate(warning.location.text.splitlines()):
            lines.append(f"  {warning.location.start_line + offset:>4} | {text}")
    return "\n".join(lines)
