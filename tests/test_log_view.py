"""The log view of one step: the end first, pages around a line, search."""

from __future__ import annotations

import re

import pytest

from tests.conftest import add_log, queued_run, steps_of

pytestmark = pytest.mark.usefixtures("no_executor")


@pytest.fixture
def long_log(hello):
    """Run 1 of hello whose greet step printed 2,000 lines; every 250th says "needle"."""
    run = queued_run(hello)
    add_log(
        steps_of(run)["greet"],
        2000,
        lambda n: f"line {n}" + (" has a NeEdLe <in> it" if n % 250 == 0 else ""),
    )
    return run


def shown(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<div class="line[^"]*" id="L(\d+)"', page)]


def url(run, **query) -> str:
    suffix = "&".join(f"{name}={value}" for name, value in query.items())
    return f"/runs/{run.pk}/steps/greet/log" + (f"?{suffix}" if suffix else "")


def test_it_opens_at_the_end_with_a_way_to_earlier_lines(alice_client, long_log):
    page = alice_client.get(url(long_log)).content.decode()

    assert shown(page) == list(range(1501, 2001))
    assert "2,000 lines" in page
    assert 'hx-get="?before=1501"' in page
    assert 'data-more="after"' not in page
    assert '<a class="ln" href="?line=1600#L1600">1600</a>' in page


def test_earlier_and_later_pages_come_alone(alice_client, long_log):
    earlier = alice_client.get(url(long_log, before=1501)).content.decode()
    assert shown(earlier) == list(range(1001, 1501))
    assert "<html" not in earlier
    assert 'hx-get="?before=1001"' in earlier and 'data-more="after"' not in earlier

    first = alice_client.get(url(long_log, before=101)).content.decode()
    assert shown(first) == list(range(1, 101))
    assert "log-more" not in first  # nothing before line 1

    later = alice_client.get(url(long_log, after=1800)).content.decode()
    assert shown(later) == list(range(1801, 2001))
    assert "log-more" not in later


def test_a_line_link_opens_the_page_around_that_line(alice_client, long_log):
    page = alice_client.get(url(long_log, line=1234)).content.decode()

    assert shown(page) == list(range(984, 1484))
    assert 'data-line="1234"' in page
    assert 'hx-get="?before=984"' in page and 'hx-get="?after=1483"' in page


def test_search_finds_marks_and_steps_through_the_matches(alice_client, long_log):
    page = alice_client.get(url(long_log, q="needle <in>")).content.decode()

    assert "match 1 of 8" in page
    assert 250 in shown(page)
    # Marked, escaped, case kept as printed.
    assert "line 250 has a <mark>NeEdLe &lt;in&gt;</mark> it" in page
    assert 'href="?q=needle+%3Cin%3E&amp;match=2#L500"' in page
    assert "Previous" not in page

    last = alice_client.get(url(long_log, q="needle", match=8)).content.decode()
    assert "match 8 of 8" in last
    assert 2000 in shown(last) and 'data-line="2000"' in last
    assert "Next" not in last and 'match=7#L1750"' in last
    # Pages fetched while scrolling keep the marks.
    assert "&amp;q=needle" in last


def test_a_search_without_match_says_so(alice_client, long_log):
    page = alice_client.get(url(long_log, q="haystack")).content.decode()

    assert "no line contains “haystack”" in page
    assert shown(page) == list(range(1501, 2001))


def test_the_log_view_of_an_unknown_step_is_404(alice_client, long_log):
    assert alice_client.get(f"/runs/{long_log.pk}/steps/nope/log").status_code == 404


def test_opening_a_long_log_costs_a_few_queries(
    alice_client, long_log, django_assert_max_num_queries
):
    with django_assert_max_num_queries(9):  # one reads the person's roles
        alice_client.get(url(long_log))


def test_a_link_to_one_match_opens_the_log_there(alice_client, long_log):
    page = alice_client.get(url(long_log, q="needle", line=1000)).content.decode()

    assert "match 4 of 8" in page
    assert 'data-line="1000"' in page and 1000 in shown(page)


def test_the_workflows_history_finds_runs_by_their_logs(alice_client, long_log, hello):
    page = alice_client.get("/workflows/hello/runs/?log=NEEDLE").content.decode()

    assert f'href="/runs/{long_log.pk}/">#1</a>' in page
    assert f'href="/runs/{long_log.pk}/steps/greet/log?q=NEEDLE&amp;line=250#L250">250</a>' in page
    assert "line 250 has a NeEdLe &lt;in&gt; it" in page
    missing = alice_client.get("/workflows/hello/runs/?log=haystack").content.decode()
    assert "No log of this workflow contains “haystack”." in missing
