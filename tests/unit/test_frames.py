"""What may follow a job's last frame on the channel: nothing from a single-use process;
from a serving one (`isolation: "none"`), its READY frame, which it writes one macrotask
after the job and which a reader late to the channel reads in the same chunk."""

import pytest

from sandbox.frames import READY, FrameReader, ProtocolError

LAST = b"R 01234567-89ab-cdef-0123-456789abcdef 42\n"


def reader(serving: bool) -> FrameReader:
    return FrameReader(1 << 20, 1 << 22, 100, 64, ready_after=serving)


def test_a_frame_after_the_last_one_breaks_the_protocol():
    frames = reader(serving=False)
    with pytest.raises(ProtocolError, match="after the job's last frame"):
        frames.feed(LAST + READY)


def test_a_serving_process_ready_frame_read_with_the_last_one_is_kept_for_later():
    frames = reader(serving=True)
    frames.feed(LAST + READY)
    assert (frames.result(), bytes(frames.trailing)) == ((LAST[2:38], b"42"), READY)


def test_a_ready_frame_may_arrive_in_pieces_after_the_last_frame():
    frames = reader(serving=True)
    frames.feed(LAST + READY[:3])
    frames.feed(READY[3:])
    assert bytes(frames.trailing) == READY


@pytest.mark.parametrize("after", [b"S reaX", b"L {}\n", READY + b"S", b"x"])
def test_anything_else_after_a_serving_process_last_frame_breaks_the_protocol(after):
    frames = reader(serving=True)
    with pytest.raises(ProtocolError, match="after the job's last frame"):
        frames.feed(LAST + after)
