from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from workflows.models import Workflow


def workflow_list(request: HttpRequest) -> HttpResponse:
    workflows = Workflow.objects.all()
    return render(request, "workflows/workflow_list.html", {"workflows": workflows})
