"""Importing a YAML file over an existing workflow: it asks first, with the changes."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from tests.conftest import make_workflow
from workflows.models import Workflow

PIPELINE = """\
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
"""
NEW_PIPELINE = """\
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh --all}
  - {key: test, name: Test, kind: shell, command: ./test.sh}
"""


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


def upload(client, text: str, name: str = "pipeline.yaml"):
    file = SimpleUploadedFile(name, text.encode(), content_type="application/yaml")
    return client.post("/workflows/import", {"file": file})


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert found, f"no hidden {name}"
    return found[1]


def saved() -> tuple[int, dict[str, str]]:
    workflow = Workflow.objects.get(slug="pipeline")
    return workflow.version, {step.key: step.config["command"] for step in workflow.steps.all()}


def test_it_shows_what_would_change_and_changes_nothing_yet(alice_client, pipeline):
    response = upload(alice_client, NEW_PIPELINE)
    page = response.content.decode()

    assert response.status_code == 200
    assert "<h1>Replace “Pipeline”?</h1>" in page
    assert "<li>Step <code>test</code> added</li>" in page
    assert "<li>Step <code>build</code> removed</li>" in page
    assert (
        "<li>Step <code>fetch</code> changed:\n"
        "    <ul><li><code>command</code>: <code>./fetch.sh</code> → "
        "<code>./fetch.sh --all</code></li></ul>"
    ) in page
    assert '<span class="file">--- pipeline now (version 1)</span>' in page
    assert '<span class="file">+++ pipeline.yaml</span>' in page
    assert '<span class="add">+  command: ./fetch.sh --all</span>' in page
    assert '<span class="del">-  command: ./fetch.sh</span>' in page
    assert hidden(page, "content") == escape(NEW_PIPELINE)
    assert hidden(page, "replacing") == "1"
    assert saved() == (1, {"fetch": "./fetch.sh", "build": "./build.sh"})


def test_it_replaces_the_workflow_once_confirmed(alice_client, pipeline):
    page = upload(alice_client, NEW_PIPELINE).content.decode()

    response = alice_client.post(
        "/workflows/import",
        {
            "content": NEW_PIPELINE,
            "filename": "pipeline.yaml",
            "replacing": hidden(page, "replacing"),
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/workflows/pipeline/"
    assert '<li class="message-success">“Pipeline” replaced (version 2).</li>' in (
        response.content.decode()
    )
    assert saved() == (2, {"fetch": "./fetch.sh --all", "test": "./test.sh"})


def test_it_asks_again_when_the_workflow_changed_after_the_changes_were_shown(
    alice_client, pipeline
):
    upload(alice_client, NEW_PIPELINE)
    make_workflow(PIPELINE.replace("./build.sh", "./build.sh --fast"))  # someone else saves

    response = alice_client.post(
        "/workflows/import",
        {"content": NEW_PIPELINE, "filename": "pipeline.yaml", "replacing": "1"},
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert "was changed after you saw what the import would change" in page
    assert '<span class="file">--- pipeline now (version 2)</span>' in page
    assert hidden(page, "replacing") == "2"
    assert saved() == (2, {"fetch": "./fetch.sh", "build": "./build.sh --fast"})


def test_it_imports_a_new_slug_and_an_identical_file_without_asking(alice_client, pipeline):
    same = upload(alice_client, PIPELINE)
    new = upload(alice_client, PIPELINE.replace("slug: pipeline", "slug: other"))

    assert (same.status_code, same["Location"]) == (302, "/workflows/pipeline/")
    assert (new.status_code, new["Location"]) == (302, "/workflows/other/")
    assert saved() == (1, {"fetch": "./fetch.sh", "build": "./build.sh"})
    assert Workflow.objects.get(slug="other").steps.count() == 2


def test_it_refuses_a_file_or_a_confirmation_over_the_size_limit(alice_client, pipeline):
    big = NEW_PIPELINE + "# " + "é" * (512 * 1024) + "\n"  # 1 MiB and a bit, in bytes
    size = f"{len(big.encode()):,} bytes; a workflow file may be at most 1,048,576 bytes (1 MiB)"

    uploaded = alice_client.get(upload(alice_client, big)["Location"])
    confirmed = alice_client.post(
        "/workflows/import",
        {"content": big, "filename": "pipeline.yaml", "replacing": "1"},
        follow=True,
    )

    assert f'<li class="message-error">pipeline.yaml: {size}.</li>' in uploaded.content.decode()
    assert f'<li class="message-error">pipeline.yaml: file: {size}</li>' in (
        confirmed.content.decode()
    )
    assert saved() == (1, {"fetch": "./fetch.sh", "build": "./build.sh"})


def test_it_escapes_the_file_name_and_content_it_shows_back(alice_client, pipeline):
    text = NEW_PIPELINE.replace("name: Pipeline", 'name: "<b>Pipeline</b>"')

    page = upload(alice_client, text, name="<img src=x onerror=alert(1)>.yaml").content.decode()

    assert "<img" not in page
    assert "<code>&lt;img src=x onerror=alert(1)&gt;.yaml</code>" in page
    assert "<b>Pipeline</b>" not in page
    assert "<code>&lt;b&gt;Pipeline&lt;/b&gt;</code>" in page


def test_it_asks_again_when_the_confirmation_names_no_version(alice_client, pipeline):
    response = alice_client.post(
        "/workflows/import",
        {"content": NEW_PIPELINE, "filename": "pipeline.yaml", "replacing": "soon"},
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert "<h1>Replace “Pipeline”?</h1>" in page
    assert "was changed after" not in page
    assert saved() == (1, {"fetch": "./fetch.sh", "build": "./build.sh"})


def test_it_confirms_a_file_just_under_the_limit_as_a_browser_posts_it(alice_client, pipeline):
    # A browser sends the text's line breaks as CRLF: a quarter more here.
    near_limit = NEW_PIPELINE + "#é\n" * 250_000
    as_posted = near_limit.replace("\n", "\r\n")
    page = upload(alice_client, near_limit).content.decode()

    response = alice_client.post(
        "/workflows/import",
        {"content": as_posted, "filename": "pipeline.yaml", "replacing": "1"},
        follow=True,
    )

    assert len(near_limit.encode()) < 1024 * 1024 < len(as_posted.encode())
    # Multipart, as the upload: URL-encoded, each "é" would take 6 bytes.
    assert (
        '<form method="post" action="/workflows/import" enctype="multipart/form-data" '
        'class="actions">'
    ) in page
    assert '<li class="message-success">“Pipeline” replaced (version 2).</li>' in (
        response.content.decode()
    )
    assert saved() == (2, {"fetch": "./fetch.sh --all", "test": "./test.sh"})


def test_it_shows_at_most_2000_lines_of_the_diff(alice_client, pipeline):
    command = "".join(f"      echo {n}\n" for n in range(3000))
    text = PIPELINE + f"  - key: big\n    kind: shell\n    command: |\n{command}"

    page = upload(alice_client, text).content.decode()
    diff = re.search(r'<pre class="diff"><code>(.*)</code></pre>', page, re.S)[1]
    lines = re.findall(r'<span class="(\w+)">(.*?)</span>', diff)

    assert len(lines) == 2001
    assert lines[-2] == ("add", "+    echo 1990")
    assert lines[-1] == ("hunk", "… 1,009 more lines not shown")
    assert saved() == (1, {"fetch": "./fetch.sh", "build": "./build.sh"})
