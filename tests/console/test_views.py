"""What the console computes for its pages: rates and time left, problems first, Secrets hidden."""

from __future__ import annotations

import pytest

from services.gateway.console import views
from services.gateway.console.sessions import local_path
from shared.contracts.events import Progress
from shared.contracts.steps import StepName
from tests.gateway.stubs import verification


def test_a_volume_bar_shows_its_rate_and_the_time_left() -> None:
    tracker = views.VolumeTracker()
    for at, done in ((100.0, 0), (102.0, 20_000_000)):
        event = Progress(
            request_id="r",
            step=StepName.RESTORE,
            at=at,
            volume="shop/db",
            bytes_done=done,
            bytes_total=50_000_000,
        )
        assert tracker.feed(event)
    assert not tracker.feed(Progress(request_id="r", bytes_done=1, bytes_total=2))  # a total, not a volume
    (bar,) = tracker.bars()
    assert (bar.label, bar.percent, bar.shown) == ("restore shop/db", 40, "20.0 MB of 50.0 MB")
    assert (bar.rate, bar.eta, bar.finished) == ("10.0 MB/s", "3.0 s", False)


def test_the_verification_report_lists_problems_first() -> None:
    view = views.verification_view(verification(partial=True))
    assert not view.ok
    assert [p["what"] for p in view.problems] == ["configmaps/shop/x", "shop/uploads"]
    assert view.problems[1]["reason"] == "1 file differs"
    assert [v["claim"] for v in view.volumes] == ["shop/uploads", "shop/data-db-0"]  # the bad one first
    assert "volumes: 1/2 equal to the snapshot" in view.summary


def test_secret_values_are_hidden_wherever_they_are() -> None:
    document = {
        "objects": [
            {"object": {"kind": "Secret", "data": {"password": "c2VjcmV0"}, "stringData": {"k": "v"}}},
            {"object": {"kind": "ConfigMap", "data": {"color": "blue"}}},
        ]
    }
    shown = views.redacted(document)
    assert shown["objects"][0]["object"]["data"] == {"password": views.HIDDEN}
    assert shown["objects"][0]["object"]["stringData"] == {"k": views.HIDDEN}
    assert shown["objects"][1]["object"]["data"] == {"color": "blue"}


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        pytest.param("/requests?phase=Failed", "/requests?phase=Failed", id="a path of this site is kept"),
        pytest.param("//evil.example/x", "/", id="a protocol-relative address goes home"),
        pytest.param("https://evil.example", "/", id="another site goes home"),
        pytest.param("/\\evil.example", "/", id="a backslash trick goes home"),
    ],
)
def test_after_signing_in_only_a_local_path_is_followed(asked: str, goes: str) -> None:
    assert local_path(asked) == goes


@pytest.mark.parametrize(
    ("n", "words"),
    [(999, "999 B"), (25_000_000, "25.0 MB"), (1_500_000_000, "1.5 GB")],
    ids=["bytes stay bytes", "megabytes", "gigabytes"],
)
def test_sizes_read_as_the_cli_prints_them(n: int, words: str) -> None:
    assert views.human_bytes(n) == words
