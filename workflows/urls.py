from __future__ import annotations

from django.urls import path

from workflows import editor_views, secret_views, views, yaml_views

app_name = "workflows"
urlpatterns = [
    path("workflows/", views.workflow_list, name="list"),
    path("workflows/import", editor_views.workflow_import, name="import"),
    path("workflows/new", views.workflow_new, name="new"),
    path("workflows/<slug:slug>/duplicate", views.workflow_duplicate, name="duplicate"),
    path("workflows/<slug:slug>/delete", views.workflow_delete, name="delete"),
    path("workflows/<slug:slug>/", views.workflow_detail, name="editor"),
    path("workflows/<slug:slug>/export", editor_views.workflow_export, name="export"),
    path("workflows/<slug:slug>/yaml", yaml_views.workflow_yaml, name="yaml"),
    path("workflows/<slug:slug>/access", views.workflow_access, name="access"),
    path("workflows/<slug:slug>/secrets", secret_views.workflow_secrets, name="secrets"),
    path("secrets/", secret_views.global_secrets, name="global_secrets"),
    path("workflows/<slug:slug>/settings", editor_views.workflow_settings, name="settings"),
    path("workflows/<slug:slug>/steps/order", editor_views.steps_order, name="steps_order"),
    path("workflows/<slug:slug>/steps/new", editor_views.step_form, name="step_new"),
    path("workflows/<slug:slug>/steps/add", editor_views.step_save, name="step_add"),
    path("workflows/<slug:slug>/steps/<slug:key>/", editor_views.step_card, name="step_card"),
    path("workflows/<slug:slug>/steps/<slug:key>/edit", editor_views.step_form, name="step_edit"),
    path("workflows/<slug:slug>/steps/<slug:key>/save", editor_views.step_save, name="step_save"),
    path("workflows/<slug:slug>/steps/<slug:key>/move", editor_views.step_move, name="step_move"),
    path(
        "workflows/<slug:slug>/steps/<slug:key>/needs", editor_views.step_needs, name="step_needs"
    ),
    path(
        "workflows/<slug:slug>/steps/<slug:key>/delete",
        editor_views.step_delete,
        name="step_delete",
    ),
]
