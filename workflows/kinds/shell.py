"""Shell steps: ``bash -c COMMAND`` in a process group of its own.

Parameters, upstream outputs and run facts reach the command as environment
variables, never pasted into the command text, so a value such as
``$(rm -rf ~)`` is only ever data.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from workflows.kinds.base import (
    ConfigError,
    Kind,
    PlaceholderScope,
    StepContext,
    StepResult,
    require_text,
)
from workflows.kinds.process import group_alive, spawn, stop_group
from workflows.kinds.step_user import StepUser, StepUserError, hand_over, step_user
from workflows.params import env_suffix, env_text

# The only variables of the server's own environment a step inherits: the
# server's secrets (SECRET_KEY, DATABASE_URL, ...) stay out of the steps.
INHERITED_VARIABLES = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",  # and every LC_* variable
    "TZ",
    "TMPDIR",
)
OUTPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
OUTPUT_FILE_MAX_BYTES = 1024 * 1024
READ_CHUNK = 64 * 1024


class ShellKind(Kind):
    name = "shell"
    label = "Shell command"
    fields = ("command",)

    def clean(self, config: dict[str, Any], scope: PlaceholderScope) -> dict[str, Any]:
        command = require_text(config, "command")
        if not command.strip():
            raise ConfigError("command", "is required")
        return {"command": command}

    def summary(self, config: dict[str, Any]) -> str:
        lines = config.get("command", "").strip().splitlines()
        return lines[0][:120] if lines else ""

    async def execute(self, ctx: StepContext) -> StepResult:
        try:
            user = step_user()
        except StepUserError as exc:
            return StepResult("failed", error=str(exc))
        # The outputs file sits in the server's scratch folder, which the step
        # may cross but not list or change: it cannot swap the file for a link.
        handle, name = tempfile.mkstemp(prefix="outputs-", dir=ctx.scratch_dir)
        os.close(handle)
        output_file = Path(name)
        try:
            hand_over(output_file, user)
            hand_over(ctx.workdir, user)
            return await self._execute(ctx, output_file, user)
        finally:
            output_file.unlink(missing_ok=True)

    async def _execute(
        self, ctx: StepContext, output_file: Path, user: StepUser | None
    ) -> StepResult:
        env = step_environment(ctx, output_file)
        if user is not None:
            env.update(HOME=str(ctx.workdir), USER=user.name, LOGNAME=user.name)
        child = await spawn(
            ["bash", "-c", ctx.config["command"]], cwd=ctx.workdir, env=env, user=user
        )
        # The shell leads a process group of its own: signals to the group
        # reach every process the command started.
        group = child.pid
        readers = [
            asyncio.create_task(_pump(ctx, child.stdout, "stdout")),
            asyncio.create_task(_pump(ctx, child.stderr, "stderr")),
        ]
        try:
            exit_code = await child.exited
            if group_alive(group):
                ctx.log("the command left background processes; stopping them")
                await stop_group(group, settings.ORCH_KILL_GRACE, log=ctx.log)
            await asyncio.gather(*readers)
        finally:
            # Reached on timeout and cancel too (the task is cancelled): no
            # process of the step outlives it.
            if group_alive(group):
                await stop_group(group, settings.ORCH_KILL_GRACE, log=ctx.log)
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

        outputs, problems = read_outputs(output_file)
        for problem in problems:
            ctx.log(f"outputs: {problem}")
        if exit_code == 0:
            return StepResult("succeeded", exit_code=0, outputs=outputs)
        if exit_code < 0:
            name = signal.Signals(-exit_code).name
            return StepResult(
                "failed",
                exit_code=exit_code,
                outputs=outputs,
                error=f"killed by {name}",
            )
        return StepResult(
            "failed",
            exit_code=exit_code,
            outputs=outputs,
            error=f"exit code {exit_code}",
        )


def step_environment(ctx: StepContext, output_file) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in INHERITED_VARIABLES or name.startswith("LC_")
    }
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(ctx.run_env)
    env.update(ctx.secrets)  # the step's secrets: names that clash with none of these
    for name, value in ctx.params.items():
        env["PARAM_" + env_suffix(name)] = env_text(value)
    source: dict[str, str] = {}
    for key, outputs in ctx.upstream.items():
        for name, value in outputs.items():
            variable = f"STEPS_{env_suffix(key)}_{env_suffix(name)}"
            if variable in source:
                # Step a's output b_c and step a_b's output c share a name.
                ctx.log(
                    f"{variable} is set by {source[variable]} and by {key}.{name}; the last wins"
                )
            source[variable] = f"{key}.{name}"
            env[variable] = value
    env["ORCH_OUTPUT"] = str(output_file)
    return env


async def _pump(ctx: StepContext, stream: asyncio.StreamReader, name: str) -> None:
    while chunk := await stream.read(READ_CHUNK):
        await ctx.feed(name, chunk)
    await ctx.end_stream(name)


def read_outputs(path) -> tuple[dict[str, str], list[str]]:
    """Parse ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    problems: list[str] = []
    with open(path, "rb") as handle:
        raw = handle.read(OUTPUT_FILE_MAX_BYTES + 1)
    if len(raw) > OUTPUT_FILE_MAX_BYTES:
        problems.append(f"the file is over {OUTPUT_FILE_MAX_BYTES} bytes; the rest is ignored")
        raw = raw[:OUTPUT_FILE_MAX_BYTES]
    lines = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd").split("\n")
    outputs: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index].rstrip("\r")
        index += 1
        if not line.strip():
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block: list[str] = []
            while index < len(lines) and lines[index].rstrip("\r") != delimiter:
                block.append(lines[index].rstrip("\r"))
                index += 1
            if index >= len(lines):
                problems.append(f"{name}: no closing {delimiter!r} line")
            index += 1
            value = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
        else:
            problems.append(f"ignored a line without '=': {line[:80]!r}")
            continue
        if not OUTPUT_NAME_RE.match(name):
            problems.append(f"ignored output with a bad name: {name[:80]!r}")
            continue
        outputs[name] = value
    return outputs, problems
