"""CTC beam search with an n-gram LM (flashlight-text's decoder), word boosting and N-best lists.

Two modes, chosen by :class:`DecodingSpec`:

- **lexicon** (default): words are spelled from the LM folder's ``words.txt`` in the model's tokenizer and put
  in a prefix tree; the beam only follows spellings of known words and the word LM scores each finished
  word. A hypothesis scores ``acoustic + alpha * LM + beta * words``.
- **lexicon-free** (``lexicon_free=True``): any token sequence is allowed (open vocabulary); the LM is the
  folder's token n-gram (``tokens.arpa``, built with ``speechtao lm build --token-order N``) and scores every
  token; words are what the tokenizer's word boundaries give.

Word boosting (Riva's ``speech_contexts``): :class:`Boost` phrases add their score to each of their words
when the beam finishes it (in the units of the hypothesis score: natural-log acoustic probability). Words
missing from the LM are added to the lexicon for that request (the LM scores them as ``<unk>``), so they
become decodable. A boost only reorders hypotheses the audio supports: a word that is not spoken still costs
its acoustic score, so a moderate boost does not insert it.

Each result has word times (the frames of the word's tokens on the best path) and confidences: a token's is
the mean probability of its symbol over its run of frames, a word's the lowest of its tokens', an
alternative's the mean probability of the path's symbols over all frames (as greedy decoding).

Usage::

    decoder = LMDecoder("lm/", tokenizer, DecodingSpec(alpha=0.8, beta=1.5, beam_size=16))
    best = decoder.search(log_probs)[0]                 # log_probs: (T, V+1) numpy
    best.text, best.confidence, word_times(best.hypothesis, tokenizer, frame_shift_s=0.02)
    decoder.search(log_probs, boosts=[Boost("harlow logistics", 10.0)], alternatives=3)   # N-best, boosted
    decoder.decode(log_probs)                           # the best CTCHypothesis (Transcriber, server)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..asr.ctc import CTCHypothesis
from ..errors import InputError, MissingDependencyError
from ..text.normalize import normalize_text
from .build import read_card, spell

log = logging.getLogger(__name__)

INSTALL_DECODER = "pip install flashlight-text==0.0.7 (or: pip install -e '.[lm]')"
_TRIE_CACHE = 16  # boosted lexicons kept per decoder


@dataclass(frozen=True)
class DecodingSpec:
    """Beam-search parameters. ``alpha``/``beta`` come from ``speechtao lm tune`` when the LM card has them."""

    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # score added per word (lexicon) or per token (lexicon-free)
    beam_size: int = 16  # hypotheses kept per frame
    beam_size_token: int = 8  # tokens tried per frame and hypothesis (0: all); 8 halves the time, same WER
    beam_threshold: float = 15.0  # drop hypotheses this far below the best
    lexicon_free: bool = False  # open vocabulary with the token LM
    unk_score: float = -math.inf  # lexicon mode: score of an unknown word (-inf: never)
    sil_score: float = 0.0  # score of a word separator frame
    alternatives: int = 1  # results returned (N-best)

    def __post_init__(self):
        if self.beam_size < 1 or self.alternatives < 1 or self.beam_size_token < 0:
            raise InputError(
                f"decoding: beam_size {self.beam_size}, alternatives {self.alternatives} must be >= 1 and "
                f"beam_size_token {self.beam_size_token} >= 0"
            )
        if self.alternatives > self.beam_size:
            raise InputError(
                f"decoding: alternatives {self.alternatives} exceeds beam_size {self.beam_size} (raise beam_size)"
            )
        if self.alpha < 0 or self.beam_threshold <= 0:
            raise InputError(f"decoding: alpha {self.alpha} must be >= 0 and beam_threshold {self.beam_threshold} > 0")

    def replace(self, **changes) -> DecodingSpec:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, d: dict) -> DecodingSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"decoding spec: unknown keys {unknown} (known: {', '.join(sorted(names))})")
        d = dict(d)
        if d.get("unk_score", 0) is None:  # JSON has no -inf: None stands for it
            d["unk_score"] = -math.inf
        return cls(**d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if math.isinf(d["unk_score"]):
            d["unk_score"] = None
        return d


@dataclass(frozen=True)
class Boost:
    """A phrase to favour (Riva ``SpeechContext``): each of its words gets ``score`` when decoded."""

    phrase: str
    score: float

    @classmethod
    def parse(cls, text: str) -> Boost:
        """``"Harlow Logistics:10"`` -> ``Boost("Harlow Logistics", 10.0)`` (no score: 10)."""
        phrase, sep, score = text.rpartition(":")
        if not sep:
            phrase, score = text, "10"
        try:
            value = float(score)
        except ValueError:
            raise InputError(f"--boost {text!r}: expected PHRASE:SCORE, e.g. 'Harlow Logistics:10'") from None
        if not normalize_text(phrase):
            raise InputError(f"--boost {text!r}: the phrase has no words after normalization")
        return cls(phrase, value)


@dataclass(frozen=True)
class BeamResult:
    """One alternative: its text, its path (tokens with word separators, frames, confidences) and score."""

    text: str
    hypothesis: CTCHypothesis  # words and times: speechtao.asr.ctc.word_times(hypothesis, tokenizer, shift)
    score: float  # total beam score (acoustic + alpha LM + beta words + boosts)

    @property
    def confidence(self) -> float:
        """Mean probability of the path's symbols over all frames."""
        return self.hypothesis.confidence


_EMPTY = CTCHypothesis((), (), (), (), 0.0, 0)


def _flashlight():
    try:
        from flashlight.lib.text import decoder as fl
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary
    except ImportError:
        raise MissingDependencyError(f"beam search with an LM needs flashlight-text: {INSTALL_DECODER}") from None
    return fl, KenLM, Dictionary


def boost_words(boosts: Sequence[Boost]) -> dict[str, float]:
    """word -> summed boost of the phrases that hold it (normalized like the LM's text)."""
    out: dict[str, float] = {}
    for b in boosts:
        for w in normalize_text(b.phrase).split():
            out[w] = out.get(w, 0.0) + float(b.score)
    return out


def _path_hypothesis(path: np.ndarray, log_probs: np.ndarray, blank: int, skip: set[int]) -> CTCHypothesis:
    """The best path's tokens (runs merged, blanks and ``skip`` ids dropped) with frames and confidences."""
    n = len(path)
    prob = np.exp(log_probs[np.arange(n), path]).astype(np.float64)
    if n == 0:
        return CTCHypothesis((), (), (), (), 0.0, 0)
    change = np.ones(n, dtype=bool)
    change[1:] = path[1:] != path[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:] - 1, n - 1)
    conf = np.add.reduceat(prob, starts) / (ends - starts + 1)
    keep = [i for i, s in enumerate(starts) if int(path[s]) != blank and int(path[s]) not in skip]
    return CTCHypothesis(
        token_ids=tuple(int(path[starts[i]]) for i in keep),
        token_frames=tuple(int(starts[i]) for i in keep),
        token_end_frames=tuple(int(ends[i]) for i in keep),
        token_confidences=tuple(float(conf[i]) for i in keep),
        confidence=float(prob.mean()),
        num_frames=n,
    )


class LMDecoder:
    """An LM folder loaded for one tokenizer; :meth:`decode` is thread-safe (one flashlight decoder a call).

    Args:
        lm_dir: a folder written by :func:`speechtao.lm.build.build_lm`.
        tokenizer: the acoustic model's tokenizer (blank = ``tokenizer.blank_id``, the last output).
        spec: decoding parameters; None: the card's tuned ones (``lm tune``), else the defaults.
        boosts: phrases :meth:`decode` favours (per-request ones go to :meth:`search`).
    """

    def __init__(self, lm_dir: str | Path, tokenizer, spec: DecodingSpec | None = None, boosts: Sequence[Boost] = ()):
        fl, KenLM, Dictionary = _flashlight()
        self._fl = fl
        self.lm_dir = Path(lm_dir)
        self.card = read_card(lm_dir)
        if spec is None:
            spec = DecodingSpec.from_dict(self.card["decoding"]) if "decoding" in self.card else DecodingSpec()
        self.spec = spec
        self.boosts = tuple(boosts)
        self.tokenizer = tokenizer
        self.blank = int(tokenizer.blank_id)
        vocab = tokenizer.vocab
        self._sil = vocab.index(" ") if " " in vocab else self.blank
        self._lock = threading.Lock()
        self._tries: OrderedDict = OrderedDict()
        self.words = [w for w in (self.lm_dir / "words.txt").read_text(encoding="utf-8").split("\n") if w]
        self._index = {w: i for i, w in enumerate(self.words)}
        self._word_dict = Dictionary([*self.words, "<unk>"])
        self._unk = len(self.words)
        self._lm = KenLM(str(self.lm_dir / self.card["lm"]), self._word_dict)
        self._token_index = {t: i for i, t in enumerate(vocab)}
        self._spellings = [self._spelling(w) for w in self.words]
        self._base_trie = self._make_trie([])
        self._token_lm = None
        if spec.lexicon_free:
            self._load_token_lm(KenLM, Dictionary)

    # --- set-up --------------------------------------------------------------------------------------------

    def _spelling(self, word: str) -> list[int] | None:
        ids = [self._token_index.get(t) for t in spell(word, self.tokenizer)]
        if not ids or any(i is None for i in ids):
            return None  # a character the model cannot emit: the word stays out of the lexicon
        return ids  # type: ignore[return-value]

    def _make_trie(self, extra: list[tuple[str, list[int]]]):
        """Prefix tree of the lexicon plus ``extra`` (boosted out-of-vocabulary words, labels past the LM's).

        Node scores are unigram LM scores without boosts: the decoder charges every word the root's smeared
        score, so a boost in the tree would penalize every other word; boosts apply when a word ends."""
        fl = self._fl
        trie = fl.Trie(len(self.tokenizer.vocab) + 1, self._sil)
        start = self._lm.start(False)
        for label, ids in enumerate(self._spellings):
            if ids is not None:
                trie.insert(ids, label, self._lm.score(start, label)[1])
        for k, (_, ids) in enumerate(extra):
            label = len(self.words) + k
            trie.insert(ids, label, self._lm.score(start, self._unk)[1])
        trie.smear(fl.SmearingMode.MAX)
        return trie

    def _load_token_lm(self, KenLM, Dictionary) -> None:
        path = self.lm_dir / "tokens.arpa"
        if not path.is_file():
            raise InputError(
                f"--lm {self.lm_dir}: lexicon-free decoding needs a token LM (tokens.arpa); rebuild the LM with "
                "`speechtao lm build ... --token-order 6`"
            )
        from .build import token_symbol

        self._token_lm = KenLM(str(path), Dictionary([token_symbol(t) for t in self.tokenizer.vocab] + ["<blank>"]))

    # --- decoding ------------------------------------------------------------------------------------------

    def _lexicon(self, boosts: Sequence[Boost]):
        """(trie, LM, extra words) for a request's boosts; cached, the base lexicon without boosts."""
        if not boosts:
            return self._base_trie, self._lm, []
        weights = boost_words(boosts)
        key = tuple(sorted(weights.items()))
        with self._lock:
            hit = self._tries.get(key)
            if hit is not None:
                self._tries.move_to_end(key)
                return hit
        extra = []
        for w in sorted(weights):
            if w not in self._index:
                ids = self._spelling(w)
                if ids is None:
                    raise InputError(f"boost word {w!r}: has characters the model's tokenizer cannot emit")
                extra.append((w, ids))
        alpha = max(self.spec.alpha, 1e-3)
        by_label = {}
        for w, bonus in weights.items():
            label = self._index[w] if w in self._index else len(self.words) + [e[0] for e in extra].index(w)
            by_label[label] = bonus / alpha  # LM scores are weighted by alpha; the boost is not
        trie = self._make_trie(extra) if extra else self._base_trie
        lm = _boosted_lm_class()(self._lm, by_label, len(self.words), self._unk)
        entry = (trie, lm, [e[0] for e in extra])
        with self._lock:
            self._tries[key] = entry
            while len(self._tries) > _TRIE_CACHE:
                self._tries.popitem(last=False)
        return entry

    def decode(self, log_probs: np.ndarray) -> CTCHypothesis:
        """The best hypothesis with this decoder's boosts (the ``FrameDecoder`` step of the server and of
        :class:`speechtao.asr.infer.Transcriber`)."""
        return self.search(log_probs, boosts=self.boosts)[0].hypothesis

    def search(
        self,
        log_probs: np.ndarray,
        *,
        boosts: Sequence[Boost] = (),
        alternatives: int | None = None,
        spec: DecodingSpec | None = None,
    ) -> list[BeamResult]:
        """Beam-search one utterance. ``log_probs``: (T, V+1) log-softmax outputs. Best first, distinct texts."""
        fl = self._fl
        spec = spec or self.spec
        n_alt = alternatives or spec.alternatives
        lp = np.ascontiguousarray(log_probs, dtype=np.float32)
        if lp.ndim != 2 or lp.shape[1] != len(self.tokenizer.vocab) + 1:
            raise InputError(
                f"LM decoding: log_probs of shape {lp.shape}, expected (frames, {len(self.tokenizer.vocab) + 1}) "
                "for this tokenizer (is the LM decoder built for another model?)"
            )
        if lp.shape[0] == 0:
            return [BeamResult("", _EMPTY, 0.0)]
        if n_alt > 1:  # alternatives need the runners-up the pruning of a 1-best search drops
            spec = spec.replace(beam_size_token=0, beam_threshold=max(spec.beam_threshold, 30.0))
        token_beam = spec.beam_size_token or lp.shape[1]
        if spec.lexicon_free:
            if self._token_lm is None:
                _, KenLM, Dictionary = _flashlight()
                self._load_token_lm(KenLM, Dictionary)
            opts = fl.LexiconFreeDecoderOptions(
                beam_size=spec.beam_size,
                beam_size_token=token_beam,
                beam_threshold=spec.beam_threshold,
                lm_weight=spec.alpha,
                sil_score=spec.sil_score + spec.beta,
                log_add=False,
                criterion_type=fl.CriterionType.CTC,
            )
            decoder = fl.LexiconFreeDecoder(opts, self._token_lm, self._sil, self.blank, [])
        else:
            trie, lm, _ = self._lexicon(boosts)
            opts = fl.LexiconDecoderOptions(
                beam_size=spec.beam_size,
                beam_size_token=token_beam,
                beam_threshold=spec.beam_threshold,
                lm_weight=spec.alpha,
                word_score=spec.beta,
                unk_score=spec.unk_score,
                sil_score=spec.sil_score,
                log_add=False,
                criterion_type=fl.CriterionType.CTC,
            )
            decoder = fl.LexiconDecoder(opts, trie, lm, self._sil, self.blank, self._unk, [], False)
        decoder.decode_begin()
        decoder.decode_step(lp.ctypes.data, lp.shape[0], lp.shape[1])
        decoder.decode_end()
        results: list[BeamResult] = []
        seen: set[str] = set()
        for h in decoder.get_all_final_hypothesis():
            hyp = self._hypothesis(h, lp, spec.lexicon_free)
            text = " ".join(self.tokenizer.decode(list(hyp.token_ids)).split())
            if text in seen:
                continue
            seen.add(text)
            results.append(BeamResult(text, hyp, float(h.score)))
            if len(results) >= n_alt:
                break
        return results or [BeamResult("", CTCHypothesis((), (), (), (), 0.0, int(lp.shape[0])), 0.0)]

    def _hypothesis(self, h, lp: np.ndarray, lexicon_free: bool) -> CTCHypothesis:
        """The path of a flashlight result as a hypothesis; in lexicon mode with one separator between words."""
        n = lp.shape[0]
        path = np.asarray(h.tokens, dtype=np.int64)[1 : n + 1]  # entry 0 is the start state
        path = np.where(path < 0, self.blank, path)
        sep = self._sil if self._sil != self.blank else None
        hyp = _path_hypothesis(path, lp, self.blank, set() if lexicon_free or sep is None else {sep})
        if lexicon_free or sep is None:
            return hyp
        # Words end at the frames flashlight marks; put a separator before every word but the first (the
        # path need not hold one: the lexicon lets words follow each other directly).
        ends = [t for t, label in enumerate(list(h.words)[1 : n + 1]) if label >= 0]
        ids, frames, end_frames, confs = [], [], [], []
        k = 0
        for w, t in enumerate(ends):
            first = k
            while k < len(hyp.token_ids) and hyp.token_frames[k] <= t:
                k += 1
            if k == first:
                continue
            if w and ids:
                f = hyp.token_frames[first]
                ids.append(sep)
                frames.append(f)
                end_frames.append(f)
                confs.append(1.0)
            ids += hyp.token_ids[first:k]
            frames += hyp.token_frames[first:k]
            end_frames += hyp.token_end_frames[first:k]
            confs += hyp.token_confidences[first:k]
        return CTCHypothesis(tuple(ids), tuple(frames), tuple(end_frames), tuple(confs), hyp.confidence, n)


@functools.cache
def _boosted_lm_class():
    fl, _, _ = _flashlight()

    class BoostedLM(fl.LM):
        """The word LM plus a bonus per boosted word; words past the LM's vocabulary score as ``<unk>``."""

        def __init__(self, base, bonus: dict[int, float], n_words: int, unk: int):
            fl.LM.__init__(self)
            self.base, self.bonus, self.n_words, self.unk = base, bonus, n_words, unk

        def start(self, start_with_nothing):
            return self.base.start(start_with_nothing)

        def score(self, state, token_index):
            idx = token_index if token_index < self.n_words else self.unk
            out_state, score = self.base.score(state, idx)
            return out_state, score + self.bonus.get(token_index, 0.0)

        def finish(self, state):
            return self.base.finish(state)

    return BoostedLM
