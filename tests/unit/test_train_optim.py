"""NovoGrad against a hand computation, AdamW wiring, and the warmup + cosine schedule at its landmarks."""

import math

import pytest
import torch

from speechtao.errors import SpecError
from speechtao.spec import spec_from_dict
from speechtao.train.optim import NovoGrad, OptimSpec, build_optimizer
from speechtao.train.schedule import LRSchedule, ScheduleSpec, lr_at


def test_novograd_two_steps_match_hand_computation():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = NovoGrad([w], lr=0.1, betas=(0.9, 0.5), eps=0.0, weight_decay=0.01)
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([0.0, 1.0])]
    # step 1: v = |g|^2 = 25; u = g / 5 + 0.01 w = [0.61, 0.78]; m = u; w -= 0.1 m
    # step 2: v = 0.5 * 25 + 0.5 * 1 = 13; u = g / sqrt(13) + 0.01 w; m = 0.9 m + u; w -= 0.1 m
    w_hand, m = [1.0, -2.0], [0.0, 0.0]
    v = None
    for g in grads:
        n2 = sum(x * x for x in g.tolist())
        v = n2 if v is None else 0.5 * v + 0.5 * n2
        u = [gi / math.sqrt(v) + 0.01 * wi for gi, wi in zip(g.tolist(), w_hand)]
        m = [0.9 * mi + ui for mi, ui in zip(m, u)]
        w_hand = [wi - 0.1 * mi for wi, mi in zip(w_hand, m)]
        w.grad = g.clone()
        opt.step()
    assert w.tolist() == pytest.approx(w_hand, abs=1e-6)
    assert w_hand == pytest.approx(
        [1.0 - 0.1 * 0.61 - 0.1 * (0.9 * 0.61 + 0.0 + 0.01 * (1.0 - 0.061)), w_hand[1]], abs=1e-6
    )  # the first coordinate written out in full


def test_build_optimizer_skips_frozen_and_names_the_kind():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2), requires_grad=False)
    opt = build_optimizer([a, b], OptimSpec(lr=1e-3, name="adamw", weight_decay=1e-3))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["params"] == [a]
    assert isinstance(build_optimizer([a], OptimSpec(lr=1e-2, name="novograd")), NovoGrad)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([b], OptimSpec(lr=1e-3))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lr": 0}, "lr must be > 0"),
        ({"lr": 1e-3, "betas": [0.9, 1.0]}, r"betas must lie in \[0, 1\)"),
        ({"lr": 1e-3, "name": "sgd"}, "expected one of"),
    ],
)
def test_optim_spec_errors(data, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(OptimSpec, data)


def test_schedule_landmarks():
    peak, floor, total, warm = 1e-3, 1e-5, 100, 10
    assert lr_at(0, peak, total, warm, floor) == pytest.approx(peak / 11)
    assert lr_at(warm, peak, total, warm, floor) == pytest.approx(peak)  # warmup ends at the peak
    assert lr_at(55, peak, total, warm, floor) == pytest.approx((peak + floor) / 2)  # cosine midpoint
    assert lr_at(total, peak, total, warm, floor) == pytest.approx(floor)
    assert lr_at(total + 50, peak, total, warm, floor) == floor
    assert lr_at(70, peak, total, warm, floor, name="constant") == peak
    assert ScheduleSpec(warmup_ratio=0.1).warmup_for(250) == 25 and ScheduleSpec().warmup_for(250) == 0


def test_lr_schedule_sets_optimizer_and_resumes():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = LRSchedule(opt, ScheduleSpec(warmup_steps=4, min_lr=0.0), peak_lr=2e-3, max_steps=20)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 / 5)
    for _ in range(4):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3)
    other = LRSchedule(torch.optim.AdamW([p], lr=1.0), ScheduleSpec(warmup_steps=4), 2e-3, 20)
    other.load_state_dict(sched.state_dict())
    assert other.lr == sched.lr and other.optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)


def test_shortened_schedule_scales_a_warmup_ratio():
    """fit_schedule_to_time shortens a 10,000-step schedule to 200 steps: a 6% warmup becomes 12 steps (not 600, which
    would keep the whole run warming up); a fixed warmup_steps stays."""
    p = torch.nn.Parameter(torch.ones(1))
    sched = LRSchedule(torch.optim.AdamW([p], lr=1.0), ScheduleSpec(warmup_ratio=0.06), 1e-3, 10_000)
    for _ in range(5):
        sched.step()
    sched.shorten(200)
    assert (sched.max_steps, sched.warmup_steps) == (200, 12)
    for _ in range(7):
        sched.step()
    assert sched.lr == pytest.approx(1e-3) and sched.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    for _ in range(188):
        sched.step()
    assert sched.lr == pytest.approx(0.0, abs=1e-12)
    fixed = LRSchedule(torch.optim.AdamW([p], lr=1.0), ScheduleSpec(warmup_steps=30), 1e-3, 10_000)
    fixed.shorten(200)
    assert fixed.warmup_steps == 30


def test_schedule_spec_refuses_both_warmups():
    with pytest.raises(SpecError, match="not both"):
        spec_from_dict(ScheduleSpec, {"warmup_steps": 5, "warmup_ratio": 0.1})
