"""After a switch a viewer's bandwidth estimate is ignored for ``ESTIMATE_SETTLE_SECONDS``,
however many receiver reports arrive meanwhile: the receiver's estimate recovers at its own
pace (a few percent a second), not per report. A viewer reporting twice a second and one
reporting every three seconds get their estimates used again after the same time."""

from __future__ import annotations

import pytest

from mediaserver.live.adaptation import Adaptation

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def switched_to_low(clock: Clock) -> Adaptation:
    """An ``Adaptation`` that just moved its viewer down (two lossy reports), past the
    ``SETTLE_REPORTS`` whose losses still tell of the full rendition."""
    a = Adaptation(clock=clock)
    assert [a.report("full", 0.3, 0.05), a.report("full", 0.3, 0.05)] == [None, "low"]
    for _ in range(Adaptation.SETTLE_REPORTS):
        clock.now += 0.1
        assert a.report("low", 0.0, 0.05) is None
    return a


def starved(a: Adaptation, current: str = "low") -> list:
    """Reports whose estimate alone (a quarter of the bitrate sent, no loss) means audio only."""
    return [a.report(current, 0.0, 0.05, 0.25) for _ in range(Adaptation.DOWN_AFTER)]


@pytest.mark.parametrize("every", [0.5, 3.0], ids=["twice-a-second", "every-3-s"])
def test_estimates_are_ignored_for_a_time_after_a_switch_not_for_a_number_of_reports(every: float):
    clock = Clock()
    a = switched_to_low(clock)
    switched = clock.now - 0.1 * Adaptation.SETTLE_REPORTS
    reports = 0
    while clock.now + every - switched <= Adaptation.ESTIMATE_SETTLE_SECONDS:
        clock.now += every
        reports += 1
        # neither bad nor clean but for its estimate: the cut made on the full rendition
        assert a.report("low", 0.05, 0.05, 0.25) is None
    assert reports == (11 if every == 0.5 else 1)
    clock.now = switched + Adaptation.ESTIMATE_SETTLE_SECONDS + 0.01
    assert starved(a) == [None, "audio"]  # the estimate counts again


def test_a_declined_step_uses_the_next_estimates_at_once():
    clock = Clock()
    a = Adaptation(clock=clock)
    a.report("full", 0.3, 0.05)
    assert a.report("full", 0.3, 0.05) == "low"
    a.declined()  # half the room struggled: the viewer stays on the full rendition
    assert starved(a, "full") == [None, "low"]  # same clock: no time has passed
