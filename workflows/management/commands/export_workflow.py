from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from workflows.file_format import to_yaml
from workflows.models import Workflow


class Command(BaseCommand):
    help = "Print a workflow as YAML, in the form import_workflows reads."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug: str, **options):
        workflow = Workflow.objects.filter(slug=slug).first()
        if workflow is None:
            raise CommandError(f"no workflow {slug!r}", returncode=2)
        self.stdout.write(to_yaml(workflow.definition()), ending="")
