"""Where the control plane places a WebSocket: the interaction worker with the fewest open
connections, counted from each worker's last report plus what was handed to it since.

A worker reports once a second at most, so during a burst of connections its report is
stale; a report must not erase the connections handed after it was made (it did: the burst
then went to whichever worker had reported last, and twenty danmaku senders arriving after
a thousand viewers all landed on one worker)."""

from __future__ import annotations

import pytest

from stagepass.interaction_workers import _Worker

pytestmark = [pytest.mark.unit]


def place(workers: list[_Worker]) -> _Worker:
    """The control plane's choice (``InteractionWorkers.hand_over``): fewest first, in order."""
    worker = sorted(workers, key=lambda w: w.connections)[0]
    worker.handed += 1
    return worker


def test_a_burst_is_spread_evenly_across_a_stale_report():
    workers = [_Worker(0), _Worker(1)]
    for n in range(1, 101):
        place(workers)
        if n in (40, 70):  # mid-burst, worker 0 reports what it had taken in a moment ago
            workers[0].reported = (workers[0].handed - 6, workers[0].handed - 6)
    assert [w.handed for w in workers] == [50, 50]  # was [53, 47]: each report erased six
    workers[0].reported = workers[1].reported = (50, 50)
    assert [place(workers).index for _ in range(4)] == [0, 1, 0, 1]  # late senders alternate


def test_closed_connections_count_once_reported():
    w = _Worker(0)
    w.handed = 10
    w.reported = (4, 10)  # it received the ten; six have closed since
    assert w.connections == 4
    w.handed += 2  # two more, not yet received
    assert w.connections == 6
    w.reported = (7, 12)  # it has them, and one more closed
    assert w.connections == 7
    w.restarted()  # a new process: nothing handed, nothing open
    assert w.connections == 0
