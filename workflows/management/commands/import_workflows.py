from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from workflows.definition import DefinitionError, file_too_big, parse_yaml, save_definition
from workflows.limits import FILE_MAX_BYTES
from workflows.models import Workflow


class Command(BaseCommand):
    help = (
        "Create or update workflows from YAML files (or folders of them), by slug. "
        "An invalid file is reported with its step and field and imports nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--keep-existing",
            action="store_true",
            help="Leave workflows that already exist as they are (used for the demos).",
        )

    def handle(self, *args, keep_existing: bool = False, **options):
        files = [f for path in options["paths"] for f in _yaml_files(path)]
        failed = 0
        for file in files:
            try:
                # Measured before reading: a huge file is refused, never loaded.
                if (size := file.stat().st_size) > FILE_MAX_BYTES:
                    self.stderr.write(f"{file}: {file_too_big(size)}")
                    failed += 1
                    continue
                definition = parse_yaml(file.read_text(encoding="utf-8"))
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
            existed = Workflow.objects.filter(slug=slug).exists()
            workflow, changed = save_definition(definition)
            if not changed:
                self.stdout.write(f"unchanged {slug} (version {workflow.version})")
            else:
                verb = "updated" if existed else "created"
                self.stdout.write(f"{verb} {slug} (version {workflow.version})")
        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) not imported")


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    if not path.exists():
        raise CommandError(f"{path}: no such file or folder", returncode=2)
    return [path]
