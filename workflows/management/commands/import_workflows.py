from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from workflows.changes import compare
from workflows.definition import DefinitionError
from workflows.file_format import file_too_big, parse_yaml
from workflows.limits import FILE_MAX_BYTES
from workflows.models import Workflow
from workflows.store import save_definition


class Command(BaseCommand):
    help = (
        "Create or update workflows from YAML files (or folders of them), by slug. "
        "An invalid file is reported with its step and field and imports nothing. "
        "A workflow that is replaced is listed with what changed; --dry-run shows "
        "that and the diff without saving anything."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--keep-existing",
            action="store_true",
            help="Leave workflows that already exist as they are (used for the demos).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say what each file would create or change, with the diff; save nothing.",
        )

    def handle(self, *args, keep_existing: bool = False, dry_run: bool = False, **options):
        files = [f for path in options["paths"] for f in _yaml_files(path)]
        failed = 0
        for file in files:
            try:
                # Measured before reading: a huge file is refused, never loaded.
                if (size := file.stat().st_size) > FILE_MAX_BYTES:
                    self.stderr.write(f"{file}: {file_too_big(size)}")
                    failed += 1
                    continue
                # Read within the limit too: a pipe, or a file still growing,
                # has no size to measure first.
                with file.open("rb") as stream:
                    content = stream.read(FILE_MAX_BYTES + 1)
                if len(content) > FILE_MAX_BYTES:
                    self.stderr.write(f"{file}: more than {file_too_big(FILE_MAX_BYTES)}")
                    failed += 1
                    continue
                definition = parse_yaml(content.decode("utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                self.stderr.write(f"{file}: cannot read: {exc}")
                failed += 1
                continue
            except DefinitionError as exc:
                for where, message in exc.errors:
                    self.stderr.write(f"{file}: {where}: {message}")
                failed += 1
                continue
            slug = definition["slug"]
            if keep_existing and Workflow.objects.filter(slug=slug).exists():
                self.stdout.write(f"kept {slug} (already there)")
                continue
            existing = Workflow.objects.filter(slug=slug).first()
            changes = None
            if existing is not None:
                changes = compare(
                    existing.definition(),
                    definition,
                    old_label=f"{slug} now (version {existing.version})",
                    new_label=str(file),
                )
            if dry_run:
                self._say_what_would_change(slug, existing, changes)
                continue
            workflow, changed = save_definition(definition, imported=True)
            if not changed:
                self.stdout.write(f"unchanged {slug} (version {workflow.version})")
            elif existing is None:
                self.stdout.write(f"created {slug} (version {workflow.version})")
            else:
                # Never replaced silently: the log of the import says what changed.
                self.stdout.write(f"updated {slug} (version {workflow.version})")
                for line in changes.summary() if changes else ():
                    self.stdout.write(f"  {line}")
        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) not imported")

    def _say_what_would_change(self, slug: str, existing: Workflow | None, changes) -> None:
        if existing is None:
            self.stdout.write(f"would create {slug}")
        elif changes is None:
            self.stdout.write(f"unchanged {slug} (version {existing.version})")
        else:
            self.stdout.write(f"would update {slug} (now version {existing.version})")
            for line in changes.summary():
                self.stdout.write(f"  {line}")
            for line in changes.diff:
                self.stdout.write(f"  {line.text}")


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    if not path.exists():
        raise CommandError(f"{path}: no such file or folder", returncode=2)
    return [path]
