"""``frames.in_order``, the check relay tests make on the numbers a viewer decoded: a repeat is
allowed only as the decoder's concealment of a loss its receiver saw.

The frames below are the ones a viewer of ``test_edge_workers`` decoded under load (pts in
90 kHz units as the receiver mapped them): frame 218 (48000) was decoded on 214 after its
receiver skipped a gap it never got (215-217) and asked for a keyframe, then the keyframe 219."""

from __future__ import annotations

import pytest

from tests.support.frames import in_order
from tests.support.played_frames import PlayedFrame

pytestmark = pytest.mark.unit


def played(*frames: tuple[int, int, int]) -> list[PlayedFrame]:
    """``(number, pts, keyframe requests)`` per decoded frame, as ``ReceiverLosses.played``."""
    out: list[PlayedFrame] = []
    for number, pts, requests in frames:
        first = out[-1].first_requests if out and out[-1] == number else requests
        out.append(PlayedFrame(number, pts, requests, first))
    return out


def test_a_repeat_after_the_receiver_skipped_a_loss_is_in_order():
    assert in_order(played((213, 33000, 0), (214, 36000, 0), (214, 48000, 1), (219, 51000, 1)))
    # several concealed frames in a row, all after the one keyframe request
    assert in_order(played((73, 0, 0), (73, 15000, 1), (73, 18000, 1), (81, 24000, 1)))


def test_a_repeat_without_a_loss_fails():
    # a frame forwarded again with new sequence numbers and timestamps (planted in the fanout)
    assert not in_order(played((62, 136500, 0), (63, 139500, 0), (63, 141000, 0), (64, 142500, 0)))


def test_a_frame_decoded_twice_fails_even_after_a_loss():
    assert not in_order(played((214, 36000, 0), (214, 36000, 1)))


def test_a_number_going_back_fails_even_after_a_loss():
    assert not in_order(played((214, 36000, 0), (213, 48000, 1)))


def test_plain_numbers_must_increase_strictly():
    assert in_order([1, 2, 5])
    assert not in_order([1, 2, 2])
