from dataclasses import dataclass, field
from typing import Literal

import pytest

from speechtao.errors import SpecError
from speechtao.spec import apply_overrides, load_spec, spec_from_dict, spec_to_dict


@dataclass
class Optim:
    lr: float
    name: Literal["adamw", "novograd"] = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Data:
    train: list[str]
    max_duration: float | None = None


@dataclass
class Spec:
    optim: Optim
    data: Data
    epochs: int = 3
    amp: bool = False
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


GOOD = {"optim": {"lr": 0.001}, "data": {"train": ["a.jsonl"]}}


def test_good_spec_and_roundtrip():
    spec = spec_from_dict(Spec, GOOD)
    assert spec.optim.lr == 0.001 and spec.optim.betas == (0.9, 0.999) and spec.epochs == 3
    assert spec_from_dict(Spec, spec_to_dict(spec)) == spec


@pytest.mark.parametrize(
    "data, message",
    [
        ({**GOOD, "epoch": 3}, "epoch: unknown key"),
        ({"optim": {"lr": "fast"}, "data": {"train": []}}, "optim.lr: expected float, got 'fast'"),
        ({"optim": {"lr": 1, "nme": "x"}, "data": {"train": []}}, "optim.nme: unknown key"),
        ({"optim": {"lr": 1}}, "data: required field missing"),
        ({"optim": {"lr": 1}, "data": {"train": [1]}}, "data.train[0]: expected str, got 1"),
        ({"optim": {"lr": 1, "name": "sgd"}, "data": {"train": []}}, "optim.name: expected one of"),
        ({**GOOD, "epochs": 2.5}, "epochs: expected int, got 2.5"),
        ({**GOOD, "amp": "yes"}, "amp: expected bool"),
        ({**GOOD, "epochs": 0}, "epochs must be >= 1"),
        ({"optim": {"lr": 1, "betas": [0.9]}, "data": {"train": []}}, "optim.betas: expected 2 items"),
    ],
)
def test_bad_specs_name_the_dotted_path(data, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec_from_dict(Spec, data)


@dataclass
class Limits:
    top: int = 1

    def __post_init__(self):
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")


@dataclass
class Unions:
    xs: list[int] | None = None
    optim: Optim | None = None
    many: list[str] | str = "a"
    num: int | None = None
    nested: dict[str, list[int]] | None = None
    limits: Limits | None = None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"xs": [1, "a"]}, "xs[1]: expected int, got 'a'"),  # the item, not the whole list
        ({"xs": "a"}, "xs: expected list[int] | None, got 'a'"),
        ({"optim": {"lr": "fast"}}, "optim.lr: expected float, got 'fast'"),
        ({"optim": {"lr": 1, "nme": 2}}, "optim.nme: unknown key for Optim (known keys: betas, lr, name)"),
        ({"optim": {}}, "optim.lr: required field missing (float)"),
        ({"optim": 3}, "optim: expected Optim | None, got 3"),
        ({"many": [1]}, "many[0]: expected str, got 1"),
        ({"many": 5}, "many: expected list[str] | str, got 5"),
        ({"num": "x"}, "num: expected int | None, got 'x'"),
        ({"nested": {"a": [1, "b"]}}, "nested.a[1]: expected int, got 'b'"),
        ({"limits": {"top": 0}}, "limits: top must be >= 1, got 0"),
    ],
)
def test_union_errors_name_the_innermost_path(data, message):
    with pytest.raises(SpecError) as exc:
        spec_from_dict(Unions, data)
    assert str(exc.value) == message


def test_overrides_parse_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 0.1\ndata:\n  train: [a.jsonl]\n")
    spec = load_spec(Spec, path, ["optim.lr=3e-4", "data.train=[x.jsonl,y.jsonl]", "epochs=5", "tags.k=v"])
    assert spec.optim.lr == pytest.approx(3e-4)
    assert spec.data.train == ["x.jsonl", "y.jsonl"] and spec.epochs == 5 and spec.tags == {"k": "v"}
    with pytest.raises(SpecError, match="expected key.sub=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(SpecError, match=r"r.yaml: optim.lr: expected float"):
        load_spec(Spec, path, ["optim.lr=fast"])


def test_missing_file_says_what_to_pass(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(Spec, tmp_path / "nope.yaml")
