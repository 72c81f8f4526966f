"""Whisper as an encoder-decoder recognizer in plain PyTorch, with weights read from CTranslate2 files.

The encoder and front end are :mod:`speechtao.asr.whisper`'s; this module adds the text decoder and decoding:

- :class:`WhisperDecoder`: token embedding + learned positions (448), pre-norm layers of causal self-attention
  (key/value cache), cross-attention over the encoder output (its keys/values computed once per window) and a
  GELU MLP; final LayerNorm and the output projection. ``forward(tokens (B, L), cache, offset) -> (B, L, V)``.
- :class:`WhisperSeqModel`: log-mels of a 30 s window (audio zero-padded to 30 s as Whisper was trained)
  -> encoder (B, 1500, D) -> decoder.
- :func:`decode_window`: greedy (``beam_size=1``) or beam search with length-normalized scores, Whisper's token
  suppression, and optional timestamp tokens under Whisper's rules (pairs, non-decreasing, a timestamp forced
  when their total probability beats any text token, the first one within 1 s).
- :func:`transcribe`: any length of audio in 30 s windows. With timestamps the next window starts at the last
  complete segment's end (so no word is cut); without, windows are back to back. Segments carry times; word
  times come from the segment times, spread over a segment's words by their character counts (an
  approximation; Whisper's cross-attention alignment is not done here).

Special tokens are looked up by name in the model's ``tokenizer.json`` (English-only models have no language
and task tokens; multilingual ones get ``<|en|><|transcribe|>``). Usage::

    model = load_seq_model("base")                     # or "tiny.en"
    result = transcribe(model, audio, DecodeOptions(beam_size=5))
    print(result.text, result.segments[0])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, InputError, MissingDependencyError
from .whisper import (
    WhisperEncoder,
    WhisperFeatureSpec,
    WhisperLogMel,
    encoder_config_from_ct2,
    encoder_state_from_ct2,
    read_ct2_model,
    whisper_model_dir,
)

N_FRAMES = 3000  # log-mel frames per 30 s window (100 per second)
SAMPLES_PER_WINDOW = 480000
SECONDS_PER_TIMESTAMP = 0.02  # one timestamp token step


@dataclass(frozen=True)
class WhisperDecoderConfig:
    n_vocab: int = 51864
    n_ctx: int = 448  # text positions
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4
    ffn_dim: int = 1536


class _SelfAttention(nn.Module):
    """Causal self-attention with a key/value cache. forward(x (B, L, D), cache (k, v) each (B, h, S, hd) or
    None) -> (out (B, L, D), new cache (B, h, S + L, hd))."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.h = h
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x, cache):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, hd)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        S = k.shape[2]
        mask = None
        if L > 1:  # new token i sits at position S - L + i and sees positions <= its own
            mask = torch.arange(S)[None, :] <= torch.arange(S - L, S)[:, None]
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, L, hd)
        return self.out(ctx.transpose(1, 2).reshape(B, L, D)), (k, v)


class _CrossAttention(nn.Module):
    """Attention over the encoder output. ``memory(xa (B, T, D))`` -> (k, v) each (B, h, T, hd), computed once."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.h = h
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def memory(self, xa):
        B, T, D = xa.shape
        k, v = self.kv(xa).view(B, T, 2, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x, kv):
        B, L, D = x.shape
        q = self.q(x).view(B, L, self.h, D // self.h).transpose(1, 2)  # (B, h, L, hd)
        ctx = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.out(ctx.transpose(1, 2).reshape(B, L, D))


class _DecoderLayer(nn.Module):
    def __init__(self, cfg: WhisperDecoderConfig):
        super().__init__()
        d = cfg.d_model
        self.attn_ln, self.attn = nn.LayerNorm(d), _SelfAttention(d, cfg.n_heads)
        self.cross_ln, self.cross = nn.LayerNorm(d), _CrossAttention(d, cfg.n_heads)
        self.mlp_ln = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(), nn.Linear(cfg.ffn_dim, d))

    def forward(self, x, self_cache, cross_kv):
        a, self_cache = self.attn(self.attn_ln(x), self_cache)
        x = x + a
        x = x + self.cross(self.cross_ln(x), cross_kv)
        return x + self.mlp(self.mlp_ln(x)), self_cache


class WhisperDecoder(nn.Module):
    """forward(tokens (B, L), cache) -> logits (B, L, n_vocab); ``cache`` (from :meth:`new_cache`) is updated in
    place: per layer the self-attention keys/values so far and the cross-attention memory."""

    def __init__(self, cfg: WhisperDecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_vocab, cfg.d_model)
        self.positions = nn.Parameter(torch.zeros(cfg.n_ctx, cfg.d_model), requires_grad=False)
        self.layers = nn.ModuleList(_DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.n_vocab, bias=False)

    def new_cache(self, xa: torch.Tensor) -> dict:
        """A cache for encoder output ``xa`` (B, T, D): cross keys/values computed, no tokens yet."""
        return {"offset": 0, "self": [None] * len(self.layers), "cross": [lay.cross.memory(xa) for lay in self.layers]}

    def forward(self, tokens: torch.Tensor, cache: dict) -> torch.Tensor:
        offset = cache["offset"]
        if offset + tokens.shape[1] > self.cfg.n_ctx:
            raise InputError(f"decoder input of {offset + tokens.shape[1]} tokens exceeds n_ctx {self.cfg.n_ctx}")
        x = self.embed(tokens) + self.positions[offset : offset + tokens.shape[1]]
        for i, layer in enumerate(self.layers):
            x, cache["self"][i] = layer(x, cache["self"][i], cache["cross"][i])
        cache["offset"] = offset + tokens.shape[1]
        return self.proj(self.ln(x))

    @staticmethod
    def reorder(cache: dict, index: torch.Tensor) -> dict:
        """The cache of the hypotheses ``index`` (beam search): rows of the self-attention cache picked."""
        cache["self"] = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache["self"]]
        return cache


def _decoder_state_from_ct2(v: dict, n_layers: int) -> dict[str, torch.Tensor]:
    names = {
        "decoder/embeddings/weight": "embed.weight",
        "decoder/position_encodings/encodings": "positions",
        "decoder/layer_norm/gamma": "ln.weight",
        "decoder/layer_norm/beta": "ln.bias",
        "decoder/projection/weight": "proj.weight",
    }
    parts = {
        "self_attention/layer_norm/gamma": "attn_ln.weight",
        "self_attention/layer_norm/beta": "attn_ln.bias",
        "self_attention/linear_0/weight": "attn.qkv.weight",
        "self_attention/linear_0/bias": "attn.qkv.bias",
        "self_attention/linear_1/weight": "attn.out.weight",
        "self_attention/linear_1/bias": "attn.out.bias",
        "attention/layer_norm/gamma": "cross_ln.weight",
        "attention/layer_norm/beta": "cross_ln.bias",
        "attention/linear_0/weight": "cross.q.weight",
        "attention/linear_0/bias": "cross.q.bias",
        "attention/linear_1/weight": "cross.kv.weight",
        "attention/linear_1/bias": "cross.kv.bias",
        "attention/linear_2/weight": "cross.out.weight",
        "attention/linear_2/bias": "cross.out.bias",
        "ffn/layer_norm/gamma": "mlp_ln.weight",
        "ffn/layer_norm/beta": "mlp_ln.bias",
        "ffn/linear_0/weight": "mlp.0.weight",
        "ffn/linear_0/bias": "mlp.0.bias",
        "ffn/linear_1/weight": "mlp.2.weight",
        "ffn/linear_1/bias": "mlp.2.bias",
    }
    for i in range(n_layers):
        names.update({f"decoder/layer_{i}/{src}": f"layers.{i}.{dst}" for src, dst in parts.items()})
    missing = [k for k in names if k not in v]
    if missing:
        raise CheckpointError(f"CTranslate2 Whisper model lacks {', '.join(missing[:3])}; the file is incomplete")
    return {dst: torch.from_numpy(np.asarray(v[src], dtype=np.float32).copy()) for src, dst in names.items()}


# ------------------------------------------------------------------------------------------------ tokenizer


class WhisperTokenizer:
    """Whisper's byte-level BPE (``tokenizer.json``) and its special tokens, looked up by name."""

    def __init__(self, path: str | Path, config: dict, multilingual: bool):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingDependencyError("Whisper's tokenizer needs tokenizers: pip install tokenizers") from None
        self.tk = Tokenizer.from_file(str(path))
        self.eot = self._id("<|endoftext|>")
        self.sot = self._id("<|startoftranscript|>")
        self.no_timestamps = self._id("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1
        self.no_speech = self.tk.token_to_id("<|nospeech|>") or self.tk.token_to_id("<|nocaptions|>")
        self.multilingual = multilingual  # English-only vocabularies also hold <|en|>: the model size tells
        self.suppress = list(config.get("suppress_ids", []))
        self.suppress_begin = list(config.get("suppress_ids_begin", []))
        self.specials = sorted({self.sot, self.no_timestamps, *range(self.eot + 1, self.no_timestamps)})

    def _id(self, token: str) -> int:
        i = self.tk.token_to_id(token)
        if i is None:
            raise CheckpointError(f"Whisper tokenizer has no {token} token; the tokenizer.json is not Whisper's")
        return i

    def prompt(self, language: str, timestamps: bool) -> list[int]:
        out = [self.sot]
        if self.multilingual:
            out += [self._id(f"<|{language}|>"), self._id("<|transcribe|>")]
        return out if timestamps else out + [self.no_timestamps]

    def decode(self, ids: list[int]) -> str:
        return self.tk.decode([i for i in ids if i < self.eot]).strip()


# ----------------------------------------------------------------------------------------------------- model


class WhisperSeqModel(nn.Module):
    """Whisper: front end + encoder + decoder. ``encode(audio (T,) <= 30 s)`` -> (1, 1500, D)."""

    def __init__(self, encoder: WhisperEncoder, decoder: WhisperDecoder, tokenizer: WhisperTokenizer, name: str):
        super().__init__()
        self.front = WhisperLogMel(WhisperFeatureSpec(n_mels=encoder.cfg.n_mels))
        self.encoder, self.decoder, self.tokenizer, self.name = encoder, decoder, tokenizer, name

    @torch.no_grad()
    def log_mel(self, audio: np.ndarray) -> torch.Tensor:
        """(n_mels, n // 160 + 3000) features of the audio followed by 30 s of silence, as Whisper computes
        them (one dynamic-range floor over the whole)."""
        x = np.concatenate([np.asarray(audio, dtype=np.float32), np.zeros(SAMPLES_PER_WINDOW, np.float32)])
        feats, _ = self.front(torch.from_numpy(x)[None], torch.tensor([len(x)]))
        return feats[0]

    @torch.no_grad()
    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (n_mels, 3000) -> (1, 1500, D)."""
        hidden, _ = self.encoder(mel[None], torch.tensor([mel.shape[1]]))
        return hidden


def load_seq_model(name: str = "tiny.en", model_dir: str | Path | None = None) -> WhisperSeqModel:
    """The Whisper model ``name`` (``tiny.en``, ``base``) installed by pip, or the CTranslate2 folder ``model_dir``."""
    folder = Path(model_dir) if model_dir is not None else whisper_model_dir(name)
    ct2 = read_ct2_model(folder / "model.bin")
    v = ct2.variables
    encoder = WhisperEncoder(encoder_config_from_ct2(ct2))
    encoder.load_state_dict(encoder_state_from_ct2(ct2), strict=True)
    n_layers = 0
    while f"decoder/layer_{n_layers}/ffn/linear_0/weight" in v:
        n_layers += 1
    n_vocab, d = v["decoder/embeddings/weight"].shape
    cfg = WhisperDecoderConfig(
        n_vocab=int(n_vocab),
        n_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
        d_model=int(d),
        n_heads=int(v["decoder/num_heads"]) if "decoder/num_heads" in v else int(d) // 64,
        n_layers=n_layers,
        ffn_dim=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
    )
    decoder = WhisperDecoder(cfg)
    decoder.load_state_dict(_decoder_state_from_ct2(v, n_layers), strict=True)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    tokenizer = WhisperTokenizer(folder / "tokenizer.json", config, multilingual=cfg.n_vocab >= 51865)
    return WhisperSeqModel(encoder, decoder, tokenizer, name).eval()


# -------------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 5  # 1: greedy
    max_tokens: int = 224  # sampled tokens per 30 s window at most
    timestamps: bool = False  # predict segment timestamps (and seek by them in long audio)
    language: str = "en"  # multilingual models only
    max_initial_timestamp: float = 1.0  # seconds: the first timestamp of a window is at most this
    # a window is silence (no text) when its no-speech probability is above no_speech_threshold and its
    # tokens' mean log-probability below logprob_threshold (Whisper's defaults)
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0

    def __post_init__(self):
        if self.beam_size < 1 or self.max_tokens < 1:
            raise ValueError(f"beam_size and max_tokens must be >= 1, got {self.beam_size}, {self.max_tokens}")


def _mask_logits(logits: torch.Tensor, seqs: list[list[int]], n_prompt: int, tk: WhisperTokenizer, opts) -> None:
    """Whisper's suppression and timestamp rules, in place on log-probabilities (B, V) of the next token."""
    neg = -float("inf")
    logits[:, tk.suppress] = neg
    logits[:, tk.specials] = neg
    if not opts.timestamps:
        logits[:, tk.timestamp_begin :] = neg
    for b, seq in enumerate(seqs):
        sampled = seq[n_prompt:]
        if not sampled:
            logits[b, tk.suppress_begin] = neg
        if not opts.timestamps:
            continue
        ts = tk.timestamp_begin
        last_ts = len(sampled) >= 1 and sampled[-1] >= ts
        prev_ts = len(sampled) < 2 or sampled[-2] >= ts
        if last_ts:
            if prev_ts:  # a pair just closed: text next
                logits[b, ts:] = neg
            else:  # a segment's end, or eot
                logits[b, : tk.eot] = neg
        stamps = [t for t in sampled if t >= ts]
        if stamps:  # non-decreasing; strictly after a closed pair
            floor = stamps[-1] if (last_ts and not prev_ts) else stamps[-1] + 1
            logits[b, ts:floor] = neg
        if not sampled:  # start with a timestamp within max_initial_timestamp
            logits[b, :ts] = neg
            logits[b, ts + int(round(opts.max_initial_timestamp / SECONDS_PER_TIMESTAMP)) + 1 :] = neg
        lp = logits[b].log_softmax(-1)
        if lp[ts:].logsumexp(-1) > lp[: tk.eot].max():
            logits[b, : tk.eot] = neg


@dataclass(frozen=True)
class WindowResult:
    tokens: list[int]  # sampled tokens (text and timestamps), eot excluded
    avg_logprob: float  # mean log-probability of the sampled tokens (eot included)
    no_speech_prob: float  # probability of the no-speech token after <|startoftranscript|>


@torch.no_grad()
def decode_window(model: WhisperSeqModel, xa: torch.Tensor, opts: DecodeOptions) -> WindowResult:
    """Decode one encoded window ``xa`` (1, T, D): greedy when ``opts.beam_size == 1``, else beam search
    (candidates finish at eot; the best by sum of log-probabilities / length once ``beam_size`` have)."""
    tk, dec = model.tokenizer, model.decoder
    prompt = tk.prompt(opts.language, opts.timestamps)
    n_prompt = len(prompt)
    beam = opts.beam_size
    cache = dec.new_cache(xa)
    seqs, scores = [list(prompt)], [0.0]
    prompt_logits = dec(torch.tensor([prompt]), cache)  # (1, L, V)
    no_speech = float(prompt_logits[0, 0].float().softmax(-1)[tk.no_speech]) if tk.no_speech is not None else 0.0
    logits = prompt_logits[:, -1]  # (1, V)
    finished: list[tuple[list[int], float]] = []
    for _ in range(opts.max_tokens):
        logits = logits.float()
        _mask_logits(logits, seqs, n_prompt, tk, opts)
        logp = logits.log_softmax(-1)  # (B, V)
        if beam == 1:
            tok = int(logp[0].argmax())
            scores[0] += float(logp[0, tok])
            if tok == tk.eot:
                finished.append((seqs[0], scores[0]))
                break
            seqs[0] = seqs[0] + [tok]
            logits = dec(torch.tensor([[tok]]), cache)[:, -1]
            continue
        cand = []
        top = logp.topk(beam + 1, dim=-1)
        for b in range(len(seqs)):
            for lp, tok in zip(top.values[b].tolist(), top.indices[b].tolist()):
                cand.append((scores[b] + lp, b, tok))
        cand.sort(key=lambda c: -c[0])
        keep_rows, new_seqs, new_scores = [], [], []
        for score, b, tok in cand:  # in score order, until beam live hypotheses: eot ones ranked above finish
            if tok == tk.eot:
                if len(finished) < beam:
                    finished.append((seqs[b], score))
                continue
            keep_rows.append(b)
            new_seqs.append(seqs[b] + [tok])
            new_scores.append(score)
            if len(new_seqs) == beam:
                break
        if len(finished) >= beam or not new_seqs:
            break
        dec.reorder(cache, torch.tensor(keep_rows))
        if cache["cross"][0][0].shape[0] != len(keep_rows):
            cache["cross"] = [
                (k[:1].expand(len(keep_rows), -1, -1, -1), v[:1].expand(len(keep_rows), -1, -1, -1))
                for k, v in cache["cross"]
            ]
        seqs, scores = new_seqs, new_scores
        logits = dec(torch.tensor([[s[-1]] for s in seqs]), cache)[:, -1]
    if not finished:  # max_tokens reached: the unfinished ones compete
        finished = list(zip(seqs, scores))
    best, score = max(finished, key=lambda f: f[1] / max(len(f[0]) - n_prompt + 1, 1))
    sampled = best[n_prompt:]
    return WindowResult(sampled, score / (len(sampled) + 1), no_speech)


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the audio
    end: float
    text: str
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class SeqTranscript:
    text: str
    segments: list[Segment]
    words: list[tuple[str, float, float]]  # (word, start s, end s)
    avg_logprob: float  # mean over windows of their tokens' mean log-probability


def _segments(tokens: list[int], tk: WhisperTokenizer, t0: float, window_s: float) -> tuple[list[Segment], float]:
    """Split sampled tokens at timestamp pairs -> segments, and the seconds of the window consumed: all of it when
    the tokens end with a lone timestamp (the speech ended inside the window) or hold none; else up to the last
    timestamp (a segment was cut off: the next window starts there)."""
    ts = tk.timestamp_begin
    segs, start, text = [], None, []
    for t in tokens:
        if t >= ts:
            sec = (t - ts) * SECONDS_PER_TIMESTAMP
            if start is None:
                start = sec
            else:
                if text:
                    segs.append(Segment(t0 + start, t0 + min(sec, window_s), tk.decode(text), tuple(text)))
                start, text = sec if not text else None, []
        else:
            text.append(t)
    if text:  # open segment: runs to the end of the window
        segs.append(Segment(t0 + (start or 0.0), t0 + window_s, tk.decode(text), tuple(text)))
    stamps = [i for i, t in enumerate(tokens) if t >= ts]
    lone_end = len(tokens) >= 2 and tokens[-1] >= ts and tokens[-2] < ts
    if not stamps or lone_end or text:
        return segs, window_s
    return segs, min((tokens[stamps[-1]] - ts) * SECONDS_PER_TIMESTAMP, window_s)


def _word_times(segments: list[Segment]) -> list[tuple[str, float, float]]:
    """Each segment's words with times spread over the segment by character count."""
    out = []
    for s in segments:
        words = s.text.split()
        total = sum(len(w) + 1 for w in words) or 1
        t = s.start
        for w in words:
            d = (s.end - s.start) * (len(w) + 1) / total
            out.append((w, round(t, 3), round(t + d, 3)))
            t += d
    return out


@torch.no_grad()
def transcribe(model: WhisperSeqModel, audio: np.ndarray, opts: DecodeOptions = DecodeOptions()) -> SeqTranscript:
    """Transcribe 16 kHz mono ``audio`` of any length in 30 s windows (see the module docstring)."""
    mel = model.log_mel(audio)  # (n_mels, n // 160 + 3000)
    n_frames = len(audio) // 160
    seek, segments, logprobs = 0, [], []
    while seek < n_frames:
        window = mel[:, seek : seek + N_FRAMES]
        window_s = min(N_FRAMES, n_frames - seek) / 100
        res = decode_window(model, model.encode_mel(window), opts)
        if res.no_speech_prob > opts.no_speech_threshold and res.avg_logprob < opts.logprob_threshold:
            seek += N_FRAMES
            continue
        logprobs.append(res.avg_logprob)
        if opts.timestamps:
            segs, consumed = _segments(res.tokens, model.tokenizer, seek / 100, window_s)
            segments += segs
            seek += max(int(round(consumed * 100)), 1) if consumed > 0 else int(window_s * 100)
        else:
            text = model.tokenizer.decode(res.tokens)
            if text:
                segments.append(Segment(seek / 100, seek / 100 + window_s, text, tuple(res.tokens)))
            seek += N_FRAMES
    text = " ".join(s.text for s in segments).strip()
    return SeqTranscript(text, segments, _word_times(segments), float(np.mean(logprobs)) if logprobs else 0.0)


__all__ = [
    "WhisperDecoder",
    "WhisperDecoderConfig",
    "WhisperSeqModel",
    "WhisperTokenizer",
    "DecodeOptions",
    "load_seq_model",
    "decode_window",
    "transcribe",
    "Segment",
    "SeqTranscript",
]
