"""What the console computes for its pages: rates and time left, problems first, Secrets hidden."""

from __future__ import annotations

import datetime as dt

import pytest

from services.gateway.console import views
from services.gateway.console.charting import rpo_points, rpo_tone
from services.gateway.console.sessions import local_path
from shared.contracts.events import Progress
from shared.contracts.policies import Policy, PolicyState, PolicyStatus
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, RequestState
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


# --- the RPO chart of a policy (services/gateway/console/charting.py) --------------------------------
def _policy_state(created: str, rpo: float, target: float = 1800.0) -> PolicyState:
    policy = Policy(
        name="shop-dr",
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
        schedule="@every 15m",
        rpo="30m",
    )
    status = PolicyStatus(
        created_at=created, rpo_seconds=rpo, rpo_target_seconds=target, breached=rpo > target
    )
    return PolicyState(policy=policy, status=status)


def _run(created: str, finished: str, phase: str = "Completed") -> RequestState:
    request = MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
    )
    return RequestState(
        id=f"replicate-{created[11:19].replace(':', '')}",
        request=request,
        phase=Phase(phase),
        created_at=created,
        updated_at=finished,
    )


def test_the_rpo_chart_is_a_sawtooth_of_the_completed_runs() -> None:
    start = "2026-12-01T10:00:00Z"
    t0 = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp()
    runs = [
        _run("2026-12-01T10:15:00Z", "2026-12-01T10:17:00Z"),
        _run("2026-12-01T10:30:00Z", "2026-12-01T10:31:00Z", "Failed"),  # a failed run lowers nothing
        _run("2026-12-01T10:45:00Z", "2026-12-01T10:50:00Z"),
    ]
    points = rpo_points(_policy_state(start, 600.0), runs, now=t0 + 3600)
    assert [(round(t - t0), round(rpo)) for t, rpo in points] == [
        (0, 0),
        (1020, 1020),  # 10:17: the first replica lands; before it, the RPO ran from the creation
        (1020, 120),  # ... and then the replica of 10:15 is 2 minutes old
        (3000, 2100),  # 10:50: just before the second, the 10:15 replica is 35 minutes old
        (3000, 300),
        (3600, 900),  # now: the 10:45 replica is 15 minutes old
    ]


@pytest.mark.parametrize(
    ("rpo", "tone"),
    [
        pytest.param(600.0, "ok", id="well within target is green"),
        pytest.param(1500.0, "warn", id="three quarters of the target is amber"),
        pytest.param(1900.0, "bad", id="above target is red"),
    ],
)
def test_the_rpo_tone_says_how_close_the_target_is(rpo: float, tone: str) -> None:
    assert rpo_tone(_policy_state("2026-12-01T10:00:00Z", rpo)) == tone
