"""The flow's choice of prune ratio under prune.max_wer_increase (the trials come largest ratio first)."""

import pytest

from speechtao.errors import SpecError
from speechtao.flow import FlowSpec
from speechtao.flow.runner import choose_ratio
from speechtao.spec import load_spec


def _t(ratio, dev_wer, within):
    return {"ratio": ratio, "dev_wer": dev_wer, "within_budget": within}


@pytest.mark.parametrize(
    "trials, budget, kept, note",
    [
        ([_t(0.25, 0.40, None)], None, 0.25, ""),  # no budget: the one ratio
        ([_t(0.5, 0.41, True)], 1.0, 0.5, "The largest ratio whose dev WER is within +1 points."),
        ([_t(0.5, 0.45, False), _t(0.375, 0.41, True)], 1.0, 0.375, "The largest ratio"),
        ([_t(0.5, 0.45, False), _t(0.375, 0.43, False), _t(0.25, 0.44, False)], 1.0, 0.375, "No ratio met"),
        ([_t(0.5, 0.44, False), _t(0.25, 0.44, False)], 0.5, 0.25, "No ratio met"),  # a tie: the smaller ratio
    ],
)
def test_choose_ratio(trials, budget, kept, note):
    chosen, why = choose_ratio(trials, budget)
    assert chosen["ratio"] == kept and why.startswith(note)


def test_prune_candidates_and_their_checks():
    spec = load_spec(FlowSpec, "recipes/asr_flow.yaml", ["prune.max_wer_increase=1.5", "prune.ratios=[0.25,0.5,0.375]"])
    assert spec.prune.candidates == [0.5, 0.375, 0.25]
    assert load_spec(FlowSpec, "recipes/asr_flow.yaml", ["prune.ratio=0.3"]).prune.candidates == [0.3]
    with pytest.raises(SpecError, match="prune ratios must be in"):
        load_spec(FlowSpec, "recipes/asr_flow.yaml", ["prune.ratios=[0.5,1.0]"])
    with pytest.raises(SpecError, match="max_wer_increase needs ratios"):
        load_spec(FlowSpec, "recipes/asr_flow.yaml", ["prune.max_wer_increase=1", "prune.ratios=[]"])
    with pytest.raises(SpecError, match="dev_share must be in"):
        load_spec(FlowSpec, "recipes/asr_flow.yaml", ["data.dev_share=0.7"])
