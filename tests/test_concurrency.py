"""Many steps writing at once, from two processes, lose nothing."""

from __future__ import annotations

from runs.models import LogLine, Run
from tests.conftest import make_workflow, manage_in_background, run_to_end, steps_of

CHATTY = """
slug: {slug}
steps:
  - {{key: start, kind: shell, command: "true"}}
{branches}
  - key: join
    kind: shell
    needs: [{keys}]
    command: echo joined
"""


def chatty_workflow(slug: str, width: int, lines: int):
    branches = "\n".join(
        f"  - {{key: b{i}, kind: shell, needs: [start], "
        f"command: 'for n in $(seq 1 {lines}); do echo \"b{i} line $n\"; done'}}"
        for i in range(width)
    )
    keys = ", ".join(f"b{i}" for i in range(width))
    return make_workflow(CHATTY.format(slug=slug, branches=branches, keys=keys))


def test_it_keeps_every_line_of_parallel_steps_in_two_processes(executor):
    chatty_workflow("in-server", width=8, lines=3000)
    chatty_workflow("in-cli", width=8, lines=3000)
    server_side = Run.objects.none()

    cli = manage_in_background("run_workflow", "in-cli")
    try:
        server_side = run_to_end(chatty_workflow("in-server", 8, 3000), executor, timeout=60)
        assert cli.wait(60) == 0, cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()

    cli_side = Run.objects.get(workflow__slug="in-cli")
    for run in (server_side, cli_side):
        assert run.status == "succeeded"
        for key, step in steps_of(run).items():
            if key.startswith("b"):
                texts = list(step.log_lines.order_by("seq").values_list("text", flat=True))
                assert texts == [f"{key} line {n}" for n in range(1, 3001)]
    assert LogLine.objects.filter(text__contains="locked").count() == 0
