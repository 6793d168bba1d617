"""`faceswap demo` and its --dub and --occlusion workflows as one call: the saved report of the last
run when a script asks for it (--json without --rerun), else the workflow run now. Each workflow's
module names its report file; this is the one place that reads a saved one back."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faceswap.demo import dub, occlusion, run
from faceswap.demo.occlusion_measures import summary as occlusion_summary
from faceswap.errors import ExitCode
from faceswap.report import Report
from faceswap.workspace import Workspace

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoRequest:
    seconds: float = 10.0
    steps: int | None = None  # training steps; None: the workflow's own default
    dub: bool = False
    occlusion: bool = False
    occluder: str | None = None  # with occlusion: what passes in front (default hand)
    reuse: bool = False  # the saved report, when there is one, instead of a new run


@dataclass
class DemoReport(Report):
    data: dict[str, Any]
    summary: Callable[[dict[str, Any]], str]

    def to_json(self) -> dict[str, Any]:
        return self.data

    def lines(self) -> list[str]:
        return self.summary(self.data).split("\n")

    @property
    def exit_code(self) -> ExitCode:
        return run.demo_exit_code(self.data)


@dataclass(frozen=True)
class Workflow:
    report_name: str
    run: Callable[[Workspace, Say], dict[str, Any]]
    summary: Callable[[dict[str, Any]], str]


def demo_report(root: Workspace, request: DemoRequest, say: Say) -> DemoReport:
    workflow = _workflow(request)
    saved = root.demo_dir / workflow.report_name
    if request.reuse and saved.exists():
        return DemoReport(json.loads(saved.read_text()), workflow.summary)
    return DemoReport(workflow.run(root, say), workflow.summary)


def _workflow(request: DemoRequest) -> Workflow:
    """The request's workflow, its options filled in from the request and the workflow's defaults."""
    if request.dub:
        options = run.DemoOptions(seconds=request.seconds, steps=request.steps or dub.DUB_STEPS)
        return Workflow(dub.REPORT_NAME, lambda root, say: dub.run_dub_demo(root, options, say), dub.summary)
    if request.occlusion:
        masked = occlusion.OcclusionDemoOptions(
            seconds=request.seconds,
            steps=request.steps or occlusion.OcclusionDemoOptions.steps,
            occluder=request.occluder or "hand",
        )
        return Workflow(
            occlusion.REPORT_NAME, lambda root, say: occlusion.run_occlusion_demo(root, masked, say), occlusion_summary
        )
    plain = run.DemoOptions(seconds=request.seconds, steps=request.steps or run.DemoOptions.steps)
    return Workflow(run.REPORT_NAME, lambda root, say: run.run_demo(root, plain, say), run.summary)
