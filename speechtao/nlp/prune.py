"""Structured pruning of an NLP model: attention heads, FFN neurons and top layers, then retraining.

First-order Taylor importance of every attention head and FFN neuron (the gradient of the task loss with respect
to a gate of 1.0 multiplied into the head's context vector / the neuron's activation, summed in absolute value
over batches; Michel et al. 2019, Molchanov et al. 2017); heads are ranked globally after per-layer L2
normalisation, FFN neurons per layer; ``drop_layers`` removes the top layers (Sajjad et al. 2020 found
top-layer dropping the most robust). The weights are sliced, not masked, so the pruned model is smaller and
faster; its per-layer shapes (:func:`speechtao.nlp.encoder.structure`) are saved with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import DataError, InputError
from .encoder import encoder_layers, layer_parts, shrink_encoder, structure
from .model_io import NLPModel, load_model, read_payload, save_model_folder
from .training import EncoderTask


@dataclass(frozen=True)
class PruneOptions:
    """What :func:`prune` removes."""

    keep_heads: float = 1.0  # fraction of all attention heads kept (ranked globally; >= 1 per layer)
    keep_ffn: float = 1.0  # fraction of FFN neurons kept in every layer
    drop_layers: int = 0  # top transformer layers removed
    batches: int = 16  # training batches used to score importance

    def __post_init__(self):
        if not 0.0 < self.keep_heads <= 1.0 or not 0.0 < self.keep_ffn <= 1.0:
            raise ValueError(f"keep_heads and keep_ffn must lie in (0, 1], got {self.keep_heads} and {self.keep_ffn}")
        if self.drop_layers < 0 or self.batches < 1:
            raise ValueError(f"drop_layers must be >= 0 and batches >= 1, got {self.drop_layers} and {self.batches}")


def importance(
    net: nn.Module, batches: Iterable[dict], loss_fn: Callable[[nn.Module, dict], torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """First-order importance of every head and FFN neuron: ``([(heads_l,) per layer], [(ffn_l,) per layer])``.

    A gate of ones is multiplied into the input of each layer's attention output projection (the concatenated
    head contexts, ``(B, T, heads * d)``) and of its FFN output projection (``(B, T, ffn)``); the score is the
    sum over batches of ``|d loss / d gate|``.
    """
    layers = encoder_layers(net.encoder)
    parts = [layer_parts(layer) for layer in layers]
    head_gates = [torch.ones(p.query.out_features // p.head_size, requires_grad=True) for p in parts]
    ffn_gates = [torch.ones(p.ffn_in.out_features, requires_grad=True) for p in parts]
    head_scores = [torch.zeros_like(g) for g in head_gates]
    ffn_scores = [torch.zeros_like(g) for g in ffn_gates]
    hooks = []
    for p, hg, fg in zip(parts, head_gates, ffn_gates):
        d = p.head_size
        hooks.append(
            p.attn_out.register_forward_pre_hook(lambda mod, args, g=hg, d=d: (args[0] * g.repeat_interleave(d),))
        )
        hooks.append(p.ffn_out.register_forward_pre_hook(lambda mod, args, g=fg: (args[0] * g,)))
    was = net.training
    net.eval()  # no dropout: scores of the deterministic function
    seen = 0
    try:
        for batch in batches:
            loss = loss_fn(net, batch)
            grads = torch.autograd.grad(loss, head_gates + ffn_gates)
            for s, g in zip(head_scores + ffn_scores, grads):
                s += g.abs()
            seen += 1
    finally:
        for h in hooks:
            h.remove()
        net.train(was)
    if not seen:
        raise DataError("no batches to score importance on (the pruning data is empty)")
    return head_scores, ffn_scores


def prune(
    net: nn.Module, batches: Iterable[dict], loss_fn: Callable[[nn.Module, dict], torch.Tensor], options: PruneOptions
) -> dict:
    """Remove heads, FFN neurons and top layers of ``net.encoder`` in place (see the module docstring).

    Returns ``{"before": structure, "after": structure, "parameters_before", "parameters_after"}``.
    """
    before = structure(net.encoder)
    n_before = sum(p.numel() for p in net.parameters())
    n_layers = before["layers"]
    if options.drop_layers >= n_layers:
        raise InputError(f"drop_layers={options.drop_layers}: the encoder has only {n_layers} layers (keep one)")
    head_scores, ffn_scores = importance(net, batches, loss_fn)
    # Heads: normalise scores per layer (L2), rank globally, keep the top fraction with >= 1 per layer.
    normed = [s / (s.norm() + 1e-12) for s in head_scores]
    total = sum(len(s) for s in normed)
    n_keep = max(n_layers, int(round(options.keep_heads * total)))
    ranked = sorted(((float(v), li, hi) for li, s in enumerate(normed) for hi, v in enumerate(s)), reverse=True)
    keep_heads: list[set[int]] = [{int(torch.argmax(s))} for s in normed]
    for _, li, hi in ranked:
        if sum(map(len, keep_heads)) >= n_keep:
            break
        keep_heads[li].add(hi)
    keep_ffn = []
    for s in ffn_scores:
        k = max(1, int(round(options.keep_ffn * len(s))))
        keep_ffn.append(torch.topk(s, k).indices.tolist())
    kept_layers = list(range(n_layers - options.drop_layers))
    shrink_encoder(net.encoder, [sorted(h) for h in keep_heads], keep_ffn, kept_layers)
    return {
        "before": before,
        "after": structure(net.encoder),
        "parameters_before": n_before,
        "parameters_after": sum(p.numel() for p in net.parameters()),
        "options": options.__dict__,
    }


@dataclass(frozen=True)
class PruneSpec:
    """``speechtao <task> prune``: what to remove from a fine-tuned model and how to retrain it (the same keys for
    every NLP task; ``--spec prune.yaml`` and flags set them, ``spec.yaml`` in ``out`` records them)."""

    model: Path  # model folder to prune (written by finetune)
    data: Path  # training data: importance scores and retraining (the task's format)
    out: Path  # folder for the pruned model
    validation: Path | None = None  # picks the retrained weights (null: data)
    keep_heads: float = 0.5  # fraction of all attention heads kept (ranked globally; >= 1 per layer)
    keep_ffn: float = 0.5  # fraction of FFN neurons kept in every layer
    drop_layers: int = 0  # top transformer layers removed
    score_batches: int = 16  # training batches that score importance
    retrain_steps: int = 200  # fine-tuning steps after pruning (0: none)
    lr: float = 5e-5  # peak learning rate of the retraining
    batch_size: int | None = None  # null: the task's own (32 sentences; QA: 16 windows)
    max_train_samples: int | None = None  # use only the first N training examples
    max_val_samples: int | None = None  # score only the first N validation examples
    seed: int = 0

    def __post_init__(self):
        self.options()  # keep_heads, keep_ffn, drop_layers, score_batches
        if self.retrain_steps < 0:
            raise ValueError(f"retrain_steps must be >= 0, got {self.retrain_steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("batch_size", "max_train_samples", "max_val_samples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {v}")

    def options(self) -> PruneOptions:
        return PruneOptions(self.keep_heads, self.keep_ffn, self.drop_layers, self.score_batches)


def prune_and_retrain(
    model: NLPModel,
    task: EncoderTask,
    spec: PruneSpec,
    monitor: str,
    evaluate: Callable[[NLPModel], dict] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Prune ``model`` (scores from the first ``spec.score_batches`` batches of ``task``), fine-tune it for
    ``spec.retrain_steps`` steps on ``task`` (0: none; ``monitor`` picks the best weights) and write the model
    folder ``spec.out`` with ``spec.yaml`` and ``prune_report.json``. Returns the report."""
    from ..spec import save_spec
    from ..train.loop import Trainer, TrainerSpec
    from ..train.optim import OptimSpec
    from ..train.schedule import ScheduleSpec

    options = spec.options()
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    save_spec(spec, out / "spec.yaml")
    net = model.net
    batches = (b for i, b in zip(range(options.batches), task.train_batches(0, 0)))
    report = prune(net, batches, task.loss_fn, options)
    log(
        f"pruned: heads {sum(report['before']['heads'])} -> {sum(report['after']['heads'])}, FFN neurons "
        f"{sum(report['before']['ffn'])} -> {sum(report['after']['ffn'])}, layers {report['before']['layers']} -> "
        f"{report['after']['layers']}, parameters {report['parameters_before']:,} -> {report['parameters_after']:,}"
    )
    model.net_config = net.config()
    retrain_steps = spec.retrain_steps
    if retrain_steps > 0:
        trainer_spec = TrainerSpec(
            out_dir=out / "retrain",
            max_epochs=10_000,
            max_steps=retrain_steps,
            log_every=max(1, retrain_steps // 10),
            val_every=retrain_steps,
            checkpoint_every=retrain_steps,
            monitor=monitor,
            monitor_mode="max",
        )
        optim, schedule = OptimSpec(lr=spec.lr, weight_decay=0.01), ScheduleSpec(warmup_ratio=0.1)
        trainer = Trainer(task, trainer_spec, optim, schedule, full_spec=spec)
        report["retrain"] = trainer.fit()
        best = read_payload(out / "retrain" / "best.pt")
        net.load_state_dict(best["state_dict"])
    net.eval()
    if evaluate is not None:
        report["eval"] = evaluate(model)
    save_model_folder(
        out,
        model.payload(extra={**model.extra, "pruning": {k: report[k] for k in ("before", "after", "options")}}),
        model.tokenizer,
        report.get("eval"),
    )
    (out / "prune_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def prune_task(
    spec: PruneSpec,
    task: str,
    training_task: Callable[..., EncoderTask],
    monitor: str,
    evaluate: Callable[[NLPModel], dict] | None = None,
) -> dict:
    """:func:`prune_and_retrain` for a task whose ``training_task(model, train, validation, batch_size, seed,
    max_train, max_val)`` builds its Trainer task (punct, NER, textcls)."""
    model = load_model(spec.model, task)
    encoder_task = training_task(
        model,
        spec.data,
        spec.validation or spec.data,
        spec.batch_size or 32,
        spec.seed,
        spec.max_train_samples,
        spec.max_val_samples,
    )
    return prune_and_retrain(model, encoder_task, spec, monitor, evaluate)
