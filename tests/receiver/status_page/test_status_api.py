"""The status page's HTTP side: what it shows, its JSON, and who may act on a window."""

from __future__ import annotations

import re

import httpx

from storage.schema import STREAM
from tests.receiver.status_page.conftest import ADMIN_TOKEN, Populated


def test_root_redirects_to_the_status_page(populated: Populated) -> None:
    answer = httpx.get(f"{populated.service.url}/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/status"


def test_the_page_shows_each_window_with_its_state_in_words(populated: Populated) -> None:
    answer = httpx.get(f"{populated.service.url}/status?days=400")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    cells = dict(re.findall(r'data-state="(\w+)" data-window="([\w-]+)"', answer.text))
    by_window = {window: state for state, window in cells.items()}
    assert by_window == {
        populated.committed.name: "committed",
        populated.requested.name: "requested",
        populated.planned.name: "planned",
        populated.failed.name: "failed",
        populated.quarantined.name: "quarantined",
    }
    assert '<div class="day">2026-11-20</div>' in answer.text
    assert "export job crashed" in answer.text  # the failed window's reason, among problems


def test_json_has_the_same_data(populated: Populated) -> None:
    document = httpx.get(f"{populated.service.url}/api/status?days=400").json()
    assert document["by_state"]["committed"] == 1 and document["by_state"]["split"] == 0
    assert {p["state"] for p in document["problems"]} == {"failed", "quarantined"}
    [in_flight] = document["in_flight"]
    assert in_flight["id"] == populated.requested.name and in_flight["deadline_at"]
    assert in_flight["attempts"] == 1 and in_flight["export_id"]
    assert document["last_committed"]["id"] == populated.committed.name
    assert document["raw_bytes"] > 0
    states = [cell["state"] for day in document["calendar"] for cell in day["cells"]]
    assert sorted(states) == ["committed", "failed", "planned", "quarantined", "requested"]


def test_a_window_detail_lists_attempts_callbacks_rows_and_parts(populated: Populated) -> None:
    url = f"{populated.service.url}/api/windows/{populated.committed.name}"
    document = httpx.get(url).json()
    assert document["state"] == "committed" and document["rows"] == 12
    [attempt] = document["attempt_list"]
    assert attempt["current"] and attempt["attempt"] == 1
    [callback] = document["callbacks"]
    assert callback["outcome"] == "processed" and callback["attempt"] == 1
    assert [part["rows"] for part in document["parts"]] == [12]
    page = httpx.get(f"{populated.service.url}/status/windows/{populated.committed.name}")
    assert page.status_code == 200
    assert document["parts"][0]["key"] in page.text and 'data-outcome="processed"' in page.text
    quarantined = httpx.get(f"{populated.service.url}/api/windows/{populated.quarantined.name}")
    assert quarantined.json()["callbacks"][0]["outcome"] == "quarantined"
    missing = httpx.get(f"{populated.service.url}/api/windows/20200101T000000Z-20200102T000000Z")
    assert missing.status_code == 404


def test_admin_actions_need_the_token(populated: Populated) -> None:
    url = f"{populated.service.url}/api/windows/{populated.failed.name}/rerequest"
    assert httpx.post(url).status_code == 403
    assert httpx.post(url, headers={"authorization": "Bearer wrong"}).status_code == 403
    cross_site = {"authorization": f"Bearer {ADMIN_TOKEN}", "sec-fetch-site": "cross-site"}
    assert httpx.post(url, headers=cross_site).status_code == 403
    other_origin = {"authorization": f"Bearer {ADMIN_TOKEN}", "origin": "https://evil.example"}
    assert httpx.post(url, headers=other_origin).status_code == 403
    state = populated.service.ledger.window(STREAM, populated.failed)
    assert state is not None and state.state == "failed"
    done = httpx.post(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert done.status_code == 200, done.text
    record = populated.service.ledger.window(STREAM, populated.failed)
    assert record is not None and record.state == "planned"


def test_a_form_post_with_the_token_replays_and_says_so(populated: Populated) -> None:
    base = f"{populated.service.url}/status/windows/{populated.quarantined.name}"
    refused = httpx.post(f"{base}/replay", data={"token": "nope"}, follow_redirects=True)
    assert "wrong or missing admin token" in refused.text
    done = httpx.post(f"{base}/replay", data={"token": ADMIN_TOKEN}, follow_redirects=True)
    assert done.status_code == 200
    assert "replay queued for export" in done.text


def test_without_an_admin_token_the_page_is_read_only(read_only: Populated) -> None:
    base = f"{read_only.service.url}/status/windows/{read_only.failed.name}"
    page = httpx.get(base)
    assert 'id="read-only"' in page.text and "<form" not in page.text
    answer = httpx.post(
        f"{read_only.service.url}/api/windows/{read_only.failed.name}/rerequest",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status_code == 403
    assert "ARCHIVER_ADMIN_TOKEN is not set" in answer.json()["detail"]


def test_every_state_of_the_lifecycle_has_a_colour() -> None:
    from receiver.status_page.data import STATE_COLOURS
    from storage.lifecycle import STATES

    assert set(STATE_COLOURS) == {str(state) for state in STATES}
