"""The serving API (Recognizer, Stream, Batcher) on hand-made CTC output.

:class:`ToneBackend` is a CTC "model" whose output is known by construction: every 20 ms output frame looks at
the 20 ms of audio around it and emits a symbol chosen by the loudness there (silence -> blank, soft -> space,
louder -> 'a', 'b', 'c'). Sine bursts are then words with exact times, so chunking, context, endpointing,
interim results and batching can be checked exactly, as the CTC decoder is checked on hand-made log-probs.
"""

import threading
import time

import numpy as np
import pytest

from speechtao.errors import AudioError, InputError
from speechtao.serve.batching import Batcher, BatcherClosed, BatchOptions
from speechtao.serve.endpointing import EndpointConfig
from speechtao.serve.recognizer import Recognizer, StreamingOptions
from speechtao.text.tokenizers import CharTokenizer

SR = 16000
LEVELS = {" ": 0.05, "a": 0.15, "b": 0.4, "c": 0.8}  # sine amplitude that reads as each symbol


class ToneBackend:
    """Audio (B, T) -> log-probs (B, T', 29): frame j covers samples [320 j - 160, 320 j + 160)."""

    sample_rate = SR
    hop_length = 160
    subsampling_factor = 2
    samples_per_frame = 320
    provider = "tone"
    features = None  # audio in only: chunk windows are not re-normalized ("window" mode)

    def __init__(self):
        self.tokenizer = CharTokenizer()
        self.calls = []  # (batch size, padded length) of every call

    def info(self, name):
        from speechtao.serve.backends import ModelInfo

        return ModelInfo(name, "<tone>", "test", SR, 28, 2, "tone", self.provider)

    def symbol(self, rms: float) -> int:
        if rms < 0.02:
            return self.tokenizer.blank_id
        if rms < 0.07:
            return 0  # space
        return 1 if rms < 0.2 else 2 if rms < 0.45 else 3

    def __call__(self, audio, lengths):
        self.calls.append(audio.shape)
        frames = -(-(lengths // self.hop_length) // self.subsampling_factor)  # ceil, as a stride-2 conv model
        out = np.full((len(audio), int(frames.max(initial=1)), 29), np.log(0.1 / 28), np.float32)
        for b in range(len(audio)):
            x = audio[b, : lengths[b]]
            for j in range(int(frames[b])):
                seg = x[max(j * 320 - 160, 0) : j * 320 + 160]
                out[b, j, self.symbol(float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0)] = np.log(0.9)
        return out, frames.astype(np.int64)

    def run_features(self, feats, feat_lengths):
        raise AssertionError("ToneBackend has no feature front end: the recognizer must not call run_features")


def tones(*parts):
    """("a", 0.3) is 0.3 s of the tone for 'a'; ("_", 0.5) is 0.5 s of silence."""
    t = []
    for sym, seconds in parts:
        n = int(round(seconds * SR))
        amp = 0.0 if sym == "_" else LEVELS[sym] * np.sqrt(2)  # peak for the rms above
        t.append((amp * np.sin(2 * np.pi * 440 * np.arange(n) / SR)).astype(np.float32))
    return np.concatenate(t)


def run_stream(rec, x, piece=1600, rate=SR):
    s = rec.create_stream()
    results = []
    for i in range(0, len(x), piece):
        s.accept_waveform(rate, x[i : i + piece])
        while rec.is_ready(s):
            rec.decode_stream(s)
        results += s.pop_results()
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    return results + s.pop_results()


SPEECH = tones(("_", 0.1), ("a", 0.3), (" ", 0.1), ("b", 0.2), ("_", 0.06), ("b", 0.2), ("c", 0.1), ("_", 0.2))
WORDS = [("a", 100, 420), ("bbc", 500, 1080)]  # a frame hears 10 ms either side: runs end one frame late
# ("a bbc": the blank between the two b runs keeps both)

GEOMETRY = [  # chunk_ms, left_context_ms, right_context_ms
    (160, 0, 0),
    (160, 320, 160),
    (100, 200, 500),
    (480, 1200, 480),
    (2000, 0, 0),
]


@pytest.mark.parametrize("final_pass", ["chunks", "utterance"])
@pytest.mark.parametrize("chunk,left,right", GEOMETRY)
def test_chunked_decoding_equals_one_pass(chunk, left, right, final_pass):
    rec = Recognizer(
        ToneBackend(),
        StreamingOptions(chunk_ms=chunk, left_context_ms=left, right_context_ms=right, final_pass=final_pass),
    )
    assert rec.chunk % 320 == 0 and rec.chunk >= chunk * 16  # rounded up to whole 20 ms frames
    offline = rec.recognize(SPEECH, SR)
    assert [(r.text, r.is_final) for r in offline] == [("a bbc", True)]
    assert [(w.word, w.start_ms, w.end_ms) for w in offline[0].words] == WORDS
    streamed = run_stream(rec, SPEECH)
    finals = [r for r in streamed if r.is_final]
    assert [(r.text, r.words) for r in finals] == [(offline[0].text, offline[0].words)]
    assert streamed[-1].is_final and finals[0].audio_processed_s == pytest.approx(len(SPEECH) / SR)


def test_interim_results_grow_before_the_final():
    rec = Recognizer(ToneBackend(), StreamingOptions(chunk_ms=100, right_context_ms=200))
    results = run_stream(rec, SPEECH, piece=800)
    interims = [r for r in results if not r.is_final]
    assert len(interims) >= 2 and results[-1].is_final and all(not r.is_final for r in results[:-1])
    assert all(0 <= r.stability <= 1 and r.words == () for r in interims)
    assert interims[0].text == "a" and interims[-1].text == "a bbc"
    assert len({r.text for r in interims}) == len(interims)  # sent only when the text changes
    # look-ahead: at least one interim shows text whose frames were not yet committed
    assert any(r.stability < 1 for r in interims)
    quiet = Recognizer(ToneBackend(), StreamingOptions(chunk_ms=100, interim_results=False))
    assert [r.is_final for r in run_stream(quiet, SPEECH)] == [True]


def test_endpoint_finalizes_each_utterance_in_stream_time():
    cfg = EndpointConfig(stop_history=400, stop_threshold=0.95)
    rec = Recognizer(ToneBackend(), StreamingOptions(chunk_ms=160, right_context_ms=160, endpoint=cfg))
    x = tones(("a", 0.3), ("_", 1.0), ("b", 0.2), (" ", 0.1), ("c", 0.2), ("_", 0.1))
    s = rec.create_stream()
    finals, saw_endpoint_while_streaming = [], False
    for i in range(0, len(x), 1600):
        s.accept_waveform(SR, x[i : i + 1600])
        while rec.is_ready(s):
            rec.decode_stream(s)
        new = [r for r in s.pop_results() if r.is_final]
        finals += new
        if rec.is_endpoint(s):
            assert new and not s.finished
            saw_endpoint_while_streaming = True
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    finals += [r for r in s.pop_results() if r.is_final]
    assert saw_endpoint_while_streaming
    assert [r.text for r in finals] == ["a", "b c"]
    assert [(w.word, w.start_ms, w.end_ms) for w in finals[0].words] == [("a", 0, 320)]
    assert [(w.word, w.start_ms, w.end_ms) for w in finals[1].words] == [("b", 1300, 1520), ("c", 1600, 1820)]
    assert finals[1].start_ms >= 700  # the second utterance starts after the first endpoint


def test_early_eou_sends_a_stable_interim_then_the_final():
    cfg = EndpointConfig(stop_history=600, stop_threshold=0.95, stop_history_eou=200, stop_threshold_eou=0.9)
    rec = Recognizer(ToneBackend(), StreamingOptions(chunk_ms=100, right_context_ms=0, endpoint=cfg))
    results = run_stream(rec, tones(("a", 0.3), ("_", 1.0)), piece=800)
    stable = [r for r in results if not r.is_final and r.stability == 1.0]
    assert [r.text for r in stable] == ["a"]
    assert [r.text for r in results if r.is_final] == ["a"]
    assert results.index(stable[0]) < results.index([r for r in results if r.is_final][0])


def test_silence_only_and_empty_streams_give_no_result():
    rec = Recognizer(ToneBackend())
    assert run_stream(rec, tones(("_", 2.0))) == []
    s = rec.create_stream()
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    assert s.pop_results() == [] and rec.get_result(s).text == ""


def test_long_utterance_is_cut_at_max_utterance_s():
    rec = Recognizer(ToneBackend(), StreamingOptions(max_utterance_s=1.0, max_final_pass_s=0.5))
    results = run_stream(rec, tones(("a", 0.4), (" ", 0.8), ("b", 0.3), (" ", 0.1), ("c", 0.3)))
    finals = [r for r in results if r.is_final]  # no silence: cut after 1.0 s, inside the long space
    assert [r.text for r in finals] == ["a", "b c"] and finals[1].start_ms == 1000
    assert [w.start_ms for w in finals[1].words] == [1200, 1600]


def test_batched_streams_equal_streams_decoded_alone():
    signals = [
        SPEECH,
        tones(("b", 0.4), ("_", 1.0)),
        tones(("_", 0.3), ("c", 0.2), (" ", 0.1), ("a", 0.6)),
        tones(("a", 0.2)),
    ]
    alone = [run_stream(Recognizer(ToneBackend()), x) for x in signals]
    backend = ToneBackend()
    rec = Recognizer(backend, max_batch_size=3)
    streams = [rec.create_stream() for _ in signals]
    got = [[] for _ in signals]
    pos = 0
    while any(not s.finished for s in streams):
        for s, x in zip(streams, signals):
            if not s.finished:
                s.accept_waveform(SR, x[pos : pos + 1600]) if pos < len(x) else s.input_finished()
        pos += 1600
        while any(rec.is_ready(s) for s in streams):
            rec.decode_streams(streams)
        for g, s in zip(got, streams):
            g += s.pop_results()
    assert got == alone
    assert max(shape[0] for shape in backend.calls) == 3  # windows shared forward passes, at most 3 a batch


def test_batcher_threads_get_the_results_of_sequential_decoding():
    signals = [SPEECH, tones(("c", 0.3), ("_", 0.2), ("a", 0.3)), tones(("b", 0.5))] * 2
    expected = [run_stream(Recognizer(ToneBackend()), x) for x in signals]
    backend = ToneBackend()
    rec = Recognizer(backend)
    batcher = Batcher(rec, BatchOptions(max_batch_size=8, max_wait_ms=20))
    got = [None] * len(signals)

    def client(i):
        s = rec.create_stream()
        out = []
        for k in range(0, len(signals[i]), 1600):
            s.accept_waveform(SR, signals[i][k : k + 1600])
            while rec.is_ready(s):
                batcher.decode(s, timeout=30)
            out += s.pop_results()
        s.input_finished()
        while rec.is_ready(s):
            batcher.decode(s, timeout=30)
        got[i] = out + s.pop_results()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(signals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    assert got == expected
    assert batcher.streams_decoded > batcher.batches  # some steps shared a batch


def test_any_input_rate_is_resampled():
    from speechtao.audio import resample

    rec = Recognizer(ToneBackend())
    x8k = resample(SPEECH, SR, 8000)
    finals = [r for r in run_stream(rec, x8k, piece=700, rate=8000) if r.is_final]
    assert [r.text for r in finals] == ["a bbc"]
    assert finals == rec.recognize(x8k, 8000)


def test_stream_misuse_raises_with_fixes():
    rec = Recognizer(ToneBackend())
    s = rec.create_stream()
    s.accept_waveform(SR, np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="sample rate changed from 16000 to 8000"):
        s.accept_waveform(8000, np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="feed each channel to its own stream"):
        s.accept_waveform(SR, np.zeros((100, 2), np.float32))
    s.input_finished()
    with pytest.raises(InputError, match="create a new stream"):
        s.accept_waveform(SR, np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="non-empty 1-D"):
        rec.recognize(np.zeros(0, np.float32), SR)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"chunk_ms": 5}, "chunk_ms must be >= 10"),
        ({"left_context_ms": -1}, "context sizes must be >= 0"),
        ({"final_pass": "both"}, "final_pass must be"),
        ({"max_final_pass_s": 0}, "max_final_pass_s"),
    ],
)
def test_streaming_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StreamingOptions(**kwargs)


def test_the_last_window_and_its_final_come_from_one_call():
    for final_pass in ("chunks", "utterance"):
        rec = Recognizer(ToneBackend(), StreamingOptions(chunk_ms=160, right_context_ms=160, final_pass=final_pass))
        s = rec.create_stream()
        s.accept_waveform(SR, SPEECH)
        while rec.is_ready(s):
            assert not rec.finalizing(s)
            rec.decode_stream(s)
        s.input_finished()
        assert rec.finalizing(s)
        rec.decode_stream(s)  # chunks: the uncommitted tail window, then the final from frames
        assert not rec.is_ready(s) and not rec.finalizing(s)
        assert [r.text for r in s.pop_results() if r.is_final] == ["a bbc"]
    # an endpoint's final pass runs in the call whose window found the endpoint
    cfg = EndpointConfig(stop_history=400, stop_threshold=0.95)
    rec = Recognizer(ToneBackend(), StreamingOptions(chunk_ms=160, right_context_ms=160, endpoint=cfg))
    s = rec.create_stream()
    x = tones(("a", 0.3), ("_", 1.0), ("b", 0.2), ("_", 0.1))
    finals_mid_stream = 0
    for i in range(0, len(x), 1600):
        s.accept_waveform(SR, x[i : i + 1600])
        while rec.is_ready(s):
            rec.decode_stream(s)
            assert not rec.finalizing(s)  # no final pass left queued for another step
        finals_mid_stream += sum(r.is_final for r in s.pop_results())
    assert finals_mid_stream == 1


class GatedBackend(ToneBackend):
    """A ToneBackend whose first call blocks until ``gate`` is set (a batch that takes its time)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, audio, lengths):
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10)
        return super().__call__(audio, lengths)


def queue_behind_a_running_batch(final_lane: bool):
    """Stream "first" (interim) is being decoded and blocks; then "b", "c" (interim) and "ending" (its input
    finished) are queued. Returns the batcher, its backend, the streams, the decode_streams calls (stream names)
    and a dict name -> time its step returned, filled by the caller threads."""
    backend = GatedBackend()
    rec = Recognizer(backend, StreamingOptions(chunk_ms=160, right_context_ms=0))
    calls = []
    decode_streams = rec.decode_streams

    def recording(streams):
        calls.append([names[id(s)] for s in streams])
        decode_streams(streams)

    rec.decode_streams = recording
    batcher = Batcher(rec, BatchOptions(max_batch_size=8, max_wait_ms=1000, final_lane=final_lane))
    streams = {n: rec.create_stream() for n in ("first", "b", "c", "ending")}
    names = {id(s): n for n, s in streams.items()}
    for s in streams.values():
        s.accept_waveform(SR, SPEECH[:3200])
    streams["ending"].input_finished()
    done = {}

    def step(name):
        batcher.decode(streams[name], timeout=30)
        done[name] = time.monotonic()

    threading.Thread(target=step, args=("first",), daemon=True).start()
    assert backend.entered.wait(10)  # "first" is being decoded: the others queue behind it
    for name in ("b", "c", "ending"):
        threading.Thread(target=step, args=(name,), daemon=True).start()
    return batcher, backend, streams, calls, done


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_batcher_runs_final_steps_first_without_waiting():
    batcher, backend, streams, calls, done = queue_behind_a_running_batch(final_lane=False)
    assert wait_for(lambda: batcher.queued() == 3)
    released = time.monotonic()
    backend.gate.set()
    assert wait_for(lambda: len(done) == 4)
    batcher.close()
    # the final first, alone (had it waited max_wait_ms for company, it would have joined b and c); the interims
    # waited together
    assert calls == [["first"], ["ending"], ["b", "c"]]
    assert done["b"] - released >= 0.5  # interim steps waited for company, up to max_wait_ms
    assert batcher.stats["urgent"]["steps"] == 1 and batcher.stats["interim"]["steps"] == 3
    assert [r.is_final for r in streams["ending"].pop_results()][-1:] == [True]


def test_final_lane_decodes_a_final_beside_a_running_batch():
    batcher, backend, streams, calls, done = queue_behind_a_running_batch(final_lane=True)
    assert wait_for(lambda: "ending" in done)  # while "first" is still blocked in the backend
    assert "first" not in done and calls == [["first"], ["ending"]] and batcher.queued() == 2
    backend.gate.set()
    assert wait_for(lambda: len(done) == 4)
    batcher.close()
    assert calls[2:] == [["b", "c"]]
    assert [r.is_final for r in streams["ending"].pop_results()][-1:] == [True]


def test_closed_batcher_refuses_steps():
    batcher = Batcher(Recognizer(ToneBackend()))
    batcher.close()
    s = batcher.recognizer.create_stream()
    s.accept_waveform(SR, SPEECH)
    with pytest.raises(BatcherClosed, match="shutting down"):
        batcher.decode(s)


def test_offline_recognize_of_long_audio_in_windows_cut_at_endpoints():
    """Past max_final_pass_s (30 s) a recording runs in 10 s windows (speechtao.asr.longform) and is cut into
    utterances by the endpointer: one final per utterance, word times from the start of the recording."""
    from speechtao.serve.recognizer import utterance_spans

    rec = Recognizer(ToneBackend(), StreamingOptions())
    x = np.concatenate([tones(("a", 0.4), ("_", 1.6))] * 20 + [tones(("b", 0.3), (" ", 0.1), ("c", 0.3))])  # 40.7 s
    finals = rec.recognize(x, SR)
    assert [r.text for r in finals] == ["a"] * 20 + ["b c"]
    starts = [r.words[0].start_ms for r in finals[:20]]
    assert all(abs(s - 2000 * k) <= 20 for k, s in enumerate(starts)), starts
    assert all(r.is_final and r.channel == 0 for r in finals) and finals[-1].words[-1].end_ms <= 40_700
    # the cutting itself: speech, 0.8 s of blanks (the default stop_history) ends an utterance
    blank = np.array([False] * 5 + [True] * 60 + [False] * 5 + [True] * 10)
    assert utterance_spans(blank, EndpointConfig(), 20.0, 3000) == [(0, 45), (45, 80)]
