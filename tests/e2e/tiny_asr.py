"""A tiny ASR model overfit on a few espeak-ng clips, shared by the e2e tests that need real decoded words."""

from __future__ import annotations

from pathlib import Path

import torch


def train_tiny(wav_dir: Path, texts: dict[str, str], out: Path) -> int:
    """Overfit a ~80k-parameter model on ``wav_dir/<name>.wav`` until eval-mode greedy decoding equals ``texts``
    on three checks in a row; save it to ``out``. Returns the number of steps taken."""
    from speechtao.asr.checkpoint import model_payload, save_model
    from speechtao.asr.ctc import decode_texts
    from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model, ctc_loss
    from speechtao.audio import read_audio
    from speechtao.features import FeatureSpec
    from speechtao.text.tokenizers import CharTokenizer

    torch.manual_seed(0)
    tok = CharTokenizer()
    config = ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=40, window_size=0.025, window_stride=0.01, dither=0.0),
        blocks=(
            BlockConfig(96, 1, 11, stride=2, residual=False),
            BlockConfig(96, 2, 11),
            BlockConfig(96, 2, 11),
            BlockConfig(128, 1, 1, residual=False, separable=False),
        ),
    )
    model = build_model(config, tok.vocab_size)
    audio = [torch.from_numpy(read_audio(wav_dir / f"{n}.wav", 16000)) for n in texts]
    lengths = torch.tensor([len(a) for a in audio])
    batch = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)  # (B, T)
    targets = [torch.tensor(tok.encode(t)) for t in texts.values()]
    target_lengths = torch.tensor([len(t) for t in targets])
    target_batch = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)  # (B, U)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    exact = 0
    for step in range(400):
        model.train()
        log_probs, out_lengths = model(batch, lengths)
        loss = ctc_loss(log_probs, out_lengths, target_batch, target_lengths, tok.blank_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            model.eval()
            with torch.inference_mode():
                exact = exact + 1 if decode_texts(*model(batch, lengths), tok) == list(texts.values()) else 0
            if exact == 3:  # exact on three checks in a row: a margin for other CPUs' arithmetic
                break
    assert exact == 3, f"the tiny model did not overfit in {step + 1} steps (loss {loss.item():.3f})"
    save_model(out, model_payload(model.eval(), tok, extra={"steps": step + 1}))
    return step + 1
