"""Structured pruning: smaller dense models that load alone, tied channel groups kept consistent."""

import pytest
import torch

from speechtao.asr.checkpoint import load_model, model_payload, save_model
from speechtao.asr.models import parameter_counts
from speechtao.asr.prune import PruneOptions, _sub_blocks, prune_model
from speechtao.errors import InputError

FAMILIES = ["quartznet_small", "citrinet_small", "jasper_small"]


def _audio():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 12000, generator=g) * 0.1, torch.tensor([12000, 7000])


@pytest.mark.parametrize("name", FAMILIES)
def test_prune_half_gives_smaller_model_that_reloads(name, tmp_path):
    loaded = load_model(name)
    result = prune_model(loaded.model, PruneOptions(ratio=0.5))
    before, after = parameter_counts(loaded.model)["total"], parameter_counts(result.model)["total"]
    assert after == result.params_after < 0.35 * before  # widths halve, so conv weights drop ~4x
    assert result.macs_after < 0.35 * result.macs_before
    assert all(w % 8 == 0 and w >= 16 for w in result.widths_after)
    assert result.widths_after == [b.filters // 2 for b in loaded.config.blocks]
    audio, lengths = _audio()
    with torch.no_grad():
        lp, out_len = result.model.eval()(audio, lengths)
        ref_lp, ref_len = loaded.model(audio, lengths)
    assert lp.shape == ref_lp.shape and lp.shape[-1] == loaded.tokenizer.vocab_size + 1
    assert torch.equal(out_len, ref_len)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-4)
    path = save_model(tmp_path / "pruned.pt", model_payload(result.model, loaded.tokenizer))
    again = load_model(path)
    assert [b.filters for b in again.config.blocks] == result.widths_after
    with torch.no_grad():
        assert torch.allclose(again.model(audio, lengths)[0], lp, atol=1e-6)


def _kill_half(model, gen):
    """Zero BatchNorm scale and shift of a random half of every sub-block's output channels (residual BN too, same
    channels for the block output) and of half the SE hidden units: those channels are then exactly 0."""
    dead = []
    for block in model.encoder.encoder:
        subs, se = _sub_blocks(block)
        block_dead = []
        for sub in subs:
            c = sub.bn.num_features
            idx = torch.randperm(c, generator=gen)[: c // 2]
            with torch.no_grad():
                sub.bn.weight[idx] = 0.0
                sub.bn.bias[idx] = 0.0
            block_dead.append(idx)
        for branch in block.res if block.res is not None else []:  # Jasper DR: one branch per pane
            with torch.no_grad():
                branch[1].weight[block_dead[-1]] = 0.0
                branch[1].bias[block_dead[-1]] = 0.0
        if se is not None:
            fc1, fc2 = se.fc[0], se.fc[2]
            h = fc1.out_features
            keep_h = (h // 2) // 1
            hidx = torch.randperm(h, generator=gen)[: h - keep_h]
            with torch.no_grad():
                fc1.weight[hidx] = 0.0
                fc2.weight[:, hidx] = 0.0
        dead.append(block_dead)
    return dead


@pytest.mark.parametrize("name", FAMILIES)
def test_pruning_dead_channels_keeps_outputs_exactly(name):
    """If the removed channels carry nothing, the pruned model computes the same function. This fails when a
    residual add, a depthwise conv, an SE layer or the decoder is sliced with other indices than its group."""
    model = load_model(name).model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
    _kill_half(model, gen)
    result = prune_model(model, PruneOptions(ratio=0.5))
    audio, lengths = _audio()
    with torch.no_grad():
        ref, _ = model(audio, lengths)
        out, _ = result.model.eval()(audio, lengths)
    assert (ref - out).abs().max() < 1e-4


def test_ratio_zero_is_identity_and_threshold_keeps_strong_channels():
    loaded = load_model("quartznet_small")
    audio, lengths = _audio()
    same = prune_model(loaded.model, PruneOptions(ratio=0.0))
    with torch.no_grad():
        assert torch.equal(same.model.eval()(audio, lengths)[0], loaded.model(audio, lengths)[0])
    strict = prune_model(loaded.model, PruneOptions(threshold=1.0, min_channels=16))
    assert strict.widths_after == [16] * len(loaded.config.blocks)  # only the top channel passes, min wins
    coarse = prune_model(loaded.model, PruneOptions(ratio=0.7, granularity=32, min_channels=40))
    assert all(w % 32 == 0 and w >= 64 for w in coarse.widths_after)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({}, "exactly one"),
        ({"ratio": 0.5, "threshold": 0.3}, "exactly one"),
        ({"ratio": 1.0}, "ratio 1.0"),
        ({"threshold": 0.0}, "threshold 0.0"),
        ({"ratio": 0.5, "granularity": 0}, "granularity"),
    ],
)
def test_bad_options_name_the_value(kwargs, word):
    with pytest.raises(InputError, match=word):
        PruneOptions(**kwargs)
