"""Long-form decoding: overlapping windows stitched at the middle of each overlap reproduce a single pass."""

import numpy as np
import pytest

from speechtao.asr.longform import plan_windows, windowed_log_probs
from speechtao.errors import InputError

SPF = 320  # samples per output frame (Whisper: hop 160 x subsampling 2)


def local_forward(max_samples):
    """A model whose output frame t depends only on samples [t * SPF, (t + 1) * SPF) (and refuses long input)."""
    calls = []

    def forward(audio, lengths):
        assert audio.shape[1] <= max_samples, "a window longer than the model takes"
        calls.append(audio.shape)
        frames = -(-lengths // SPF)  # ceil
        out = np.full((len(audio), int(frames.max()), 3), -50.0, np.float32)
        for b, n in enumerate(lengths):
            for t in range(int(frames[b])):
                x = audio[b, t * SPF : min((t + 1) * SPF, n)]
                logits = np.array([x.mean(), x.std(), np.abs(x).max()], np.float64) * 10
                out[b, t] = logits - np.log(np.exp(logits).sum())
        return out, frames

    return forward, calls


@pytest.mark.parametrize("n", [1000, 32_000, 32_001, 95_999, 160_000 + 17, 321_280])
def test_windows_reproduce_a_single_pass_of_a_local_model(n):
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    whole, _ = local_forward(10**9)
    expected, lengths = whole(audio[None], np.array([n]))
    forward, calls = local_forward(32_000)
    got = windowed_log_probs(audio, forward, window=32_000, overlap=6_400, samples_per_frame=SPF, batch_size=3)
    assert got.shape == (int(lengths[0]), 3)
    np.testing.assert_allclose(got, expected[0], rtol=0, atol=1e-6)
    assert len(calls) == -(-len(plan_windows(n, window=32_000, overlap=6_400, samples_per_frame=SPF)) // 3)


def test_plan_cuts_in_the_middle_of_each_overlap_on_frame_boundaries():
    plan = plan_windows(100_000, window=32_000, overlap=8_000, samples_per_frame=SPF)
    assert plan[0].start == 0 and plan[-1].end == 100_000 and plan[0].keep_from == 0 and plan[-1].keep_to is None
    for a, b in zip(plan, plan[1:]):
        assert a.start % SPF == 0 and b.start % SPF == 0
        assert a.end - b.start >= 8_000  # neighbours overlap by at least the overlap
        assert a.keep_to == b.keep_from
        assert abs(a.keep_to * SPF - (b.start + a.end) / 2) <= SPF / 2  # the middle of the overlap
    assert all(w.end - w.start <= 32_000 for w in plan)
    assert plan_windows(32_000, window=32_000, overlap=8_000, samples_per_frame=SPF) == [
        type(plan[0])(0, 32_000, 0, None)
    ]


def test_bad_window_or_overlap_is_refused():
    with pytest.raises(InputError, match="half the window"):
        plan_windows(100_000, window=32_000, overlap=20_000, samples_per_frame=SPF)
    with pytest.raises(InputError, match="two output frames"):
        plan_windows(100_000, window=500, overlap=0, samples_per_frame=SPF)
