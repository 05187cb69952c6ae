"""The pipeline's depth from the measured pace: the worker's batches ahead, the collector's receives, the producer's
sends."""
from grid.daemons.pace import PIPELINE_FROM, WEIGHT, Pace


def test_nothing_goes_to_the_background_until_a_call_was_seen_to_wait():
    pace = Pace()
    assert pace.depth(8) == 1
    pace.computed(0.01)
    assert pace.depth(8) == 1
    pace.waited(PIPELINE_FROM / 2)  # the embedded queue: its calls take a millisecond or two
    assert pace.depth(8) == 1


def test_the_first_measures_set_the_depth_at_once():
    """Not a running average from zero, which took several batches to find out that the calls wait."""
    pace = Pace()
    pace.waited(0.05)
    assert pace.depth(8) == 2  # how long a unit computes is not known yet: one in hand, one on the network
    pace.computed(0.02)
    assert (pace.wait, pace.compute) == (0.05, 0.02) and pace.depth(8) == 4  # 1 + 50 ms / 20 ms, rounded up
    assert pace.depth(3) == 3


def test_later_measures_move_the_averages_by_their_weight():
    pace = Pace()
    pace.waited(0.05)
    pace.waited(0.0)
    pace.computed(0.02)
    pace.computed(0.04)
    assert abs(pace.wait - 0.05 * (1 - WEIGHT)) < 1e-12 and abs(pace.compute - (0.02 + WEIGHT * 0.02)) < 1e-12
    for _ in range(30):  # the calls stopped waiting: back to the daemon's own thread
        pace.waited(0.0)
    assert pace.depth(8) == 1
