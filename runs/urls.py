from __future__ import annotations

from django.urls import path, register_converter

from runs.pages import approvals, compare_views, items, log_page, pausing, views


class StepKeyConverter:
    """A step's key, or one item of a map's ("each[3]", its brackets percent-encoded)."""

    regex = r"[-a-zA-Z0-9_]+(?:\[[0-9]{1,9}\])?"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(StepKeyConverter, "step_key")

app_name = "runs"
urlpatterns = [
    # Under /workflows/ for the user, but here: starting a run is a runs matter.
    path("workflows/<slug:slug>/run", views.workflow_run, name="start"),
    path("workflows/<slug:slug>/runs/", views.workflow_runs, name="workflow_history"),
    path("runs/", views.run_list, name="list"),
    path("runs/<int:run_id>/", views.run_detail, name="detail"),
    path("runs/<int:run_id>/cancel", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/pause", pausing.run_pause, name="pause"),
    path("runs/<int:run_id>/resume", pausing.run_resume, name="resume"),
    path("runs/<int:run_id>/rerun", views.run_rerun, name="rerun"),
    path("runs/compare", compare_views.compare_pick, name="compare_pick"),
    path("runs/<int:run_id>/compare/<int:other_id>/", compare_views.run_compare, name="compare"),
    path("runs/<int:run_id>/steps/<step_key:key>/log.txt", views.step_log, name="step_log_text"),
    path("runs/<int:run_id>/steps/<step_key:key>/log", log_page.step_log_page, name="step_log"),
    path("runs/<int:run_id>/steps/<slug:key>/items", items.step_items, name="step_items"),
    path("runs/<int:run_id>/steps/<slug:key>/approve", approvals.step_approve, name="step_approve"),
    path("runs/<int:run_id>/steps/<slug:key>/reject", approvals.step_reject, name="step_reject"),
]
