"""Pieces of `speechtao asr federate` that need no FLARE run: the spec's checks, the plan each site reads, and
FedProx's proximal term (its gradient is mu * (w - w_global) on top of the task's)."""

import json

import pytest
import torch

from speechtao.asr.federate import FederatedSpec, SiteSpec, site_ids, write_plan
from speechtao.asr.federate_client import _proximal
from speechtao.errors import SpecError
from speechtao.spec import load_spec


def _spec(tmp_path, **kw):
    sites = [
        SiteSpec("a", tmp_path / "a.jsonl", tmp_path / "at.jsonl"),
        SiteSpec("b", tmp_path / "b.jsonl", tmp_path / "bt.jsonl", tmp_path / "bd.jsonl"),
    ]
    return FederatedSpec(
        starter="quartznet_small", recipe=tmp_path / "r.yaml", sites=sites, out_dir=tmp_path / "out", **kw
    )


def test_plan_names_each_site_its_own_manifests(tmp_path):
    spec = _spec(tmp_path, local_steps=7, algorithm="fedprox", fedprox_mu=0.1)
    plan = json.loads(write_plan(spec, tmp_path / "plan.json").read_text())
    assert site_ids(spec) == ["site-1", "site-2"] == list(plan["sites"])
    assert plan["sites"]["site-1"] == {
        "name": "a",
        "train": str(tmp_path / "a.jsonl"),
        "dev": str(tmp_path / "a.jsonl"),
    }
    assert plan["sites"]["site-2"]["dev"] == str(tmp_path / "bd.jsonl")
    assert plan["local_steps"] == 7 and plan["algorithm"] == "fedprox" and plan["fedprox_mu"] == 0.1
    assert plan["starter"] == "quartznet_small"  # a preset name stays a name


@pytest.mark.parametrize(
    "override,message",
    [
        ("rounds=0", "rounds and local_steps must be >= 1"),
        ("algorithm=fedsgd", "algorithm"),
        ("fedprox_mu=0", "fedprox_mu must be > 0"),
    ],
)
def test_bad_specs_name_the_field(tmp_path, override, message):
    (tmp_path / "f.yaml").write_text(
        "starter: s\nrecipe: r.yaml\nout_dir: o\nalgorithm: fedprox\nsites:\n"
        "  - {name: a, train: a.jsonl, test: a.jsonl}\n  - {name: b, train: b.jsonl, test: b.jsonl}\n"
    )
    with pytest.raises(SpecError, match=message):
        load_spec(FederatedSpec, tmp_path / "f.yaml", [override])


def test_one_site_or_twice_the_same_name_is_refused(tmp_path):
    a = SiteSpec("a", tmp_path / "a.jsonl", tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="at least 2 sites"):
        FederatedSpec(starter="s", recipe=tmp_path, sites=[a], out_dir=tmp_path)
    with pytest.raises(ValueError, match="its own name"):
        FederatedSpec(starter="s", recipe=tmp_path, sites=[a, a], out_dir=tmp_path)


def test_proximal_term_adds_mu_times_the_drift_to_the_gradient():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)

    class Task:
        def loss(self, m, batch):
            return (m(batch) ** 2).sum()

    task, x, mu = Task(), torch.randn(4, 3), 0.5
    anchor = [p.detach().clone() for p in model.parameters()]
    _proximal(task, model, mu)
    with torch.no_grad():  # the site has moved away from the global weights
        for p in model.parameters():
            p.add_(0.3)
    plain = torch.autograd.grad(Task().loss(model, x), list(model.parameters()))
    prox = torch.autograd.grad(task.loss(model, x), list(model.parameters()))
    for g0, g1, p, a in zip(plain, prox, model.parameters(), anchor):
        assert torch.allclose(g1 - g0, mu * (p - a), atol=1e-6)
