"""The encoder-decoder recognizer (speechtao.serve.seq_recognizer): interims from the words two decodes agree on,
a decode's cost bounding the next interim, finals at energy-VAD endpoints, at 30 s and at the end, offline results
per segment. A scripted backend drives the stream mechanics; Whisper tiny.en on real recordings Debian ships
checks the endpoint path end to end."""

from pathlib import Path

import numpy as np
import pytest

from speechtao.asr.whisper_seq import Segment, SeqTranscript
from speechtao.errors import AudioError, InputError
from speechtao.serve.backends import ModelInfo, SequenceBackend
from speechtao.serve.endpointing import EndpointConfig
from speechtao.serve.seq_recognizer import EnergyVAD, SeqRecognizer, SeqStreamingOptions, agreed_words

SR = 16000
CARDS = Path("/usr/share/pocketsphinx/test/data/cards")


class ScriptedBackend:
    """Returns its texts in turn (the last one again once they run out); records each call's audio length and
    beam, and advances ``clock`` by ``cost`` seconds per call (the recognizer's perf_counter in these tests)."""

    sample_rate = SR
    window_s = 30.0
    beam_size = 5
    written_form = True

    def __init__(self, texts, cost=0.0, clock=None):
        self.texts = list(texts)
        self.calls: list[tuple[int, int]] = []
        self.bf16: list[bool] = []
        self.cost, self.clock = cost, clock

    def transcribe(self, audio, beam_size, bf16=False):
        self.calls.append((len(audio), beam_size))
        self.bf16.append(bf16)
        if self.clock is not None:
            self.clock[0] += self.cost
        text = self.texts[min(len(self.calls) - 1, len(self.texts) - 1)]
        seconds = len(audio) / SR
        words = text.split()
        seg = Segment(0.0, seconds, text)
        times = [(w, i * seconds / len(words), (i + 1) * seconds / len(words)) for i, w in enumerate(words)]
        return SeqTranscript(text, [seg] if text else [], times, -0.1)

    def info(self, name):
        return ModelInfo(name, "scripted", "whisper", SR, 10, 2, "whisper_seq", "test")


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Every 300 ms: 100 ms of noise at -70 dBFS, then 200 ms at -20 dBFS: speech to the energy VAD, with pauses
    too short to end an utterance."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    level = np.where(np.arange(n) % (3 * SR // 10) < SR // 10, 0.0003, 0.1)
    return (level * rng.standard_normal(n)).astype(np.float32)


def feed(rec, s, audio, piece=1600):
    out = []
    for i in range(0, len(audio), piece):
        s.accept_waveform(SR, audio[i : i + piece])
        while rec.is_ready(s):
            rec.decode_stream(s)
        out += s.pop_results()
    return out


def finish(rec, s):
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    return s.pop_results()


@pytest.mark.parametrize(
    "previous, current, n",
    [
        ([], ["and"], 0),
        (["and", "mister"], ["And", "Mr.", "John"], 1),
        (["And", "Mr.", "John."], ["and", "mr", "John", "Dashwood"], 3),
        (["Ten", "of", "clubs"], ["Ten", "of", "clubs,"], 3),
        (["a", "b"], ["c", "b"], 0),
    ],
)
def test_agreed_words_ignore_case_and_punctuation(previous, current, n):
    assert agreed_words(previous, current) == n


def test_interims_send_the_agreed_words_as_stable_and_the_rest_after_them():
    backend = ScriptedBackend(["and mister", "And Mr. John.", "And Mr. John Dashwood", "And Mr. John Dashwood had"])
    assert isinstance(backend, SequenceBackend)
    rec = SeqRecognizer(backend, SeqStreamingOptions(redecode_ms=1000))
    s = rec.create_stream()
    got = feed(rec, s, speechlike(4.5))
    interims = [(r.stability, r.text) for r in got]
    assert interims == [
        (0.1, "and mister"),
        (0.9, "And"),
        (0.1, " Mr. John."),
        (0.9, "And Mr. John"),
        (0.1, " Dashwood"),
        (0.9, "And Mr. John Dashwood"),
        (0.1, " had"),
    ]
    assert all(not r.is_final and r.words == () for r in got)
    assert [beam for _, beam in backend.calls] == [1, 1, 1, 1]  # interims greedy
    assert backend.bf16 == [rec.bf16 == "interims"] * 4  # a bf16 encoder where the CPU has it natively
    final = finish(rec, s)
    assert backend.bf16[-1] is False  # finals in float32: exactly asr infer's decode
    assert [(r.is_final, r.text, r.stability) for r in final] == [(True, "And Mr. John Dashwood had", 1.0)]
    assert backend.calls[-1] == (len(speechlike(4.5)), 5)  # the final: the whole utterance, the model's beam
    assert [w.word for w in final[0].words] == ["And", "Mr.", "John", "Dashwood", "had"]
    assert final[0].words[-1].end_ms == 4500 and rec.get_result(s) is final[0]


def test_a_slow_decode_delays_the_next_interim(monkeypatch):
    """An interim decode of 1.5 s with max_interim_share 0.5 makes the next wait for 3 s of new audio."""
    import speechtao.serve.seq_recognizer as mod

    clock = [0.0]
    monkeypatch.setattr(mod.time, "perf_counter", lambda: clock[0])
    backend = ScriptedBackend(["a"], cost=1.5, clock=clock)
    rec = SeqRecognizer(backend, SeqStreamingOptions(redecode_ms=1000, max_interim_share=0.5))
    s = rec.create_stream()
    feed(rec, s, speechlike(8.0))
    assert [n for n, _ in backend.calls] == [SR * 1, SR * 4, SR * 7]  # 1 s, then every 3 s (not every 1 s)
    assert rec.seconds_in_model == pytest.approx(4.5)


def test_finals_at_30_s_and_at_the_end_without_pauses():
    backend = ScriptedBackend(["x"])
    rec = SeqRecognizer(backend, SeqStreamingOptions(interim_results=False))
    s = rec.create_stream()
    got = feed(rec, s, speechlike(35.0)) + finish(rec, s)
    assert [(r.is_final, r.start_ms, r.audio_processed_s) for r in got] == [(True, 0, 30.0), (True, 30000, 35.0)]
    assert backend.calls == [(30 * SR, 5), (5 * SR, 5)]


def test_endpoint_after_silence_and_no_interims_before_speech():
    backend = ScriptedBackend(["one", "two"])
    rec = SeqRecognizer(backend, SeqStreamingOptions(interim_results=False))
    s = rec.create_stream(EndpointConfig(stop_history=500))
    silence = np.zeros(SR, np.float32)
    got = feed(rec, s, np.concatenate([speechlike(2.0), silence, speechlike(1.0, seed=1)])) + finish(rec, s)
    assert [(r.text, r.start_ms) for r in got] == [("one", 0), ("two", 2500)]  # ended 500 ms into the silence
    assert backend.calls == [(int(2.5 * SR), 5), (int(1.5 * SR), 5)]


def test_offline_results_per_segment_with_their_words():
    class TwoSegments(ScriptedBackend):
        def transcribe(self, audio, beam_size, bf16=False):
            segs = [Segment(0.0, 1.0, "ten of clubs."), Segment(1.5, 2.5, "Seven.")]
            words = [("ten", 0.0, 0.3), ("of", 0.3, 0.5), ("clubs.", 0.5, 1.0), ("Seven.", 1.5, 2.5)]
            return SeqTranscript("ten of clubs. Seven.", segs, words, -0.2)

    rec = SeqRecognizer(TwoSegments([]))
    got = rec.recognize(speechlike(3.0), 48000, channel=1)  # resampled to 16 kHz: 1 s
    assert [(r.text, r.start_ms, [w.word for w in r.words], r.channel) for r in got] == [
        ("ten of clubs.", 0, ["ten", "of", "clubs."], 1),
        ("Seven.", 1500, ["Seven."], 1),
    ]
    assert got[1].audio_processed_s == 1.0  # clipped to the audio's end


def test_stream_input_errors_are_the_ctc_streams():
    rec = SeqRecognizer(ScriptedBackend(["x"]))
    s = rec.create_stream()
    with pytest.raises(AudioError, match="1-D"):
        s.accept_waveform(SR, np.zeros((2, 10), np.float32))
    s.accept_waveform(SR, np.zeros(10, np.float32))
    with pytest.raises(AudioError, match="sample rate changed"):
        s.accept_waveform(8000, np.zeros(10, np.float32))
    s.input_finished()
    with pytest.raises(InputError, match="after input_finished"):
        s.accept_waveform(SR, np.zeros(10, np.float32))
    with pytest.raises(AudioError, match="non-empty"):
        rec.recognize(np.zeros(0, np.float32), SR)
    with pytest.raises(InputError, match="not a sequence backend"):
        SeqRecognizer(object())
    with pytest.raises(ValueError, match="max_utterance_s"):
        SeqStreamingOptions(max_utterance_s=40)
    with pytest.raises(ValueError, match="bf16_encoder"):
        SeqStreamingOptions(bf16_encoder="fp16")


def test_energy_vad_against_the_recent_background():
    vad = EnergyVAD(margin_db=10, floor_dbfs=-60)
    frame = 320
    quiet = np.full(frame, 0.001, np.float32)  # -60 dBFS
    loud = np.full(frame, 0.1, np.float32)  # -20 dBFS
    assert [vad.push(x) for x in (quiet, loud, quiet, 0.5 * loud)] == [True, False, True, False]
    assert vad.push(np.full(frame, 0.0025, np.float32))  # -52 dBFS: within 10 dB of the floor


@pytest.mark.slow  # ~35 s on the loaded 2-core machine (four Whisper decodes)
@pytest.mark.skipif(not (CARDS / "001.wav").is_file(), reason="apt-get install pocketsphinx-testdata")
def test_whisper_endpoint_splits_two_real_recordings():
    """cards 001 + 1.7 s of the recording's own background + cards 003: two finals, each with the words of
    Whisper on its recording alone (case and punctuation aside); the second starts inside the pause."""
    from speechtao.audio import read_audio
    from speechtao.serve.backends import WhisperSeqBackend

    backend = WhisperSeqBackend("whisper:tiny.en:beam=1")
    a, b = read_audio(CARDS / "001.wav", SR), read_audio(CARDS / "003.wav", SR)
    gap = np.tile(a[-1920:], 14)  # the last 120 ms of 001 are background noise: 1.7 s of it
    rec = SeqRecognizer(backend, SeqStreamingOptions(interim_results=False))
    s = rec.create_stream()
    got = feed(rec, s, np.concatenate([a, gap, b])) + finish(rec, s)
    alone = [backend.transcribe(x, 1).text for x in (a, b)]
    assert len(got) == 2 and all(t.split() for t in alone)
    for r, t in zip(got, alone):
        assert agreed_words(r.text.split(), t.split()) == len(t.split()) == len(r.text.split()), (r.text, t)
    # the endpoint: 800 ms (stop_history) into the pause; the next utterance starts there
    assert 1000 * len(a) / SR < got[1].start_ms == 1000 * got[0].audio_processed_s < 1000 * (len(a) + len(gap)) / SR
    assert got[0].words[-1].end_ms <= got[1].start_ms <= got[1].words[0].start_ms


def test_a_client_that_wants_no_interims_costs_no_interim_decodes():
    from speechtao.audio import pcm16_encode
    from speechtao.serve.session import AudioSession, SessionConfig

    backend = ScriptedBackend(["a", "a b"])
    rec = SeqRecognizer(backend)
    config = SessionConfig(encoding="LINEAR_PCM", sample_rate=SR, channels=1, interim_results=False)
    session = AudioSession(rec, rec.decode_stream, config)
    data = pcm16_encode(speechlike(4.0))
    got = [r for i in range(0, len(data), 3200) for r in session.feed(data[i : i + 3200])] + session.finish()
    assert [(r.is_final, r.text) for r in got] == [(True, "a")]
    assert backend.calls == [(4 * SR, 5)]  # the final only
