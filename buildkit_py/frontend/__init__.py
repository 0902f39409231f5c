"""The Dockerfile frontend: text -> nodes (`parser`) -> typed instructions (`convert`) -> op graph (`dockerfile2ops`)."""

from __future__ import annotations

from .convert import node_to_instruction, parse_stages
from .dockerfile2ops import dockerfile_to_plan
from .instructions import Instruction, Stage
from .parser import Node, ParsedDockerfile, parse_dockerfile
from .plan import BuildPlan, HistoryStep, ImageResolver, ResolvedImage

__all__ = [
    "BuildPlan",
    "HistoryStep",
    "ImageResolver",
    "Instruction",
    "Node",
    "ParsedDockerfile",
    "ResolvedImage",
    "Stage",
    "dockerfile_to_plan",
    "node_to_instruction",
    "parse_dockerfile",
    "parse_stages",
]
