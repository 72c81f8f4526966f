"""The step log's ETA: the pace so far, capped by what is left of `trainer.max_time_s`."""

from speechtao.train import ddp
from speechtao.train.time_budget import TimeBudget


def _budget(max_time_s, elapsed):
    b = TimeBudget(max_time_s, False, 100, start_step=0, total=10_000, ctx=ddp.DistContext())
    b.start -= elapsed  # as if the run had started `elapsed` seconds ago
    return b


def test_eta_follows_the_pace_without_a_time_budget():
    assert abs(_budget(None, 100.0).eta(step=10, total=10_000) - 99_900.0) < 50  # 10 s per step


def test_eta_ends_with_the_time_budget():
    eta = _budget(1800.0, 100.0).eta(step=10, total=10_000)  # 1,700 s left of the budget, 27 h at the pace
    assert 1690 < eta <= 1700
    assert _budget(1800.0, 100.0).eta(step=9_999, total=10_000) < 11  # the steps end first
    assert _budget(60.0, 100.0).eta(step=10, total=10_000) == 0.0  # over the budget: nothing left
