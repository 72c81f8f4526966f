"""Final-transcript steps of the server: inverse text normalization (NeMo's grammars), word times of written
tokens, profanity masking."""

import pytest

from speechtao.asr.ctc import Word
from speechtao.serve.transcript import TranscriptPipeline, align_words, load_profanity, mask_text, mask_word

# spoken (what a CTC model writes) -> written (what verbatim_transcripts=false sends)
ITN_CASES = [
    # cardinals (NeMo writes numbers from ten up as digits, single digits as words)
    ("twenty one", "21"),
    ("forty two", "42"),
    ("ninety nine", "99"),
    ("three hundred twenty one", "321"),
    ("one hundred and five", "105"),
    ("one thousand", "1000"),
    ("one thousand two hundred thirty four", "1234"),
    ("two million", "2 million"),
    ("the year two thousand", "the year 2000"),
    ("call one two three four five six seven", "call 1234567"),
    ("three point one four", "3.14"),
    # ordinals
    ("the first time", "the 1st time"),
    ("the second place", "the 2nd place"),
    ("on the third floor", "on the 3rd floor"),
    ("the twenty first century", "the 21st century"),
    ("one hundredth", "100th"),
    # times
    ("five thirty p m", "05:30 p.m."),
    ("at seven a m", "at 07:00 a.m."),
    ("quarter past two", "02:15"),
    ("half past six", "06:30"),
    ("twelve o'clock", "12:00"),
    # dates and years
    ("may fifth twenty twenty", "may 5 2020"),
    ("january first nineteen ninety nine", "january 1 1999"),
    ("december twenty fifth", "december 25"),
    ("march third", "march 3"),
    ("in nineteen eighty four", "in 1984"),
    ("the nineteen nineties", "the 1990s"),
    # money
    ("twenty five dollars", "$25"),
    ("it costs twenty five dollars and fifty cents", "it costs $25.50"),
    ("fifty cents", "$0.50"),
    ("one dollar", "$1"),
    ("five euros", "€5"),
    # measures
    ("three point five kilograms", "3.5 kg"),
    ("ten kilometers", "10 km"),
    ("five hundred grams", "500 g"),
    ("two hundred meters", "200 m"),
    ("twenty percent", "20 %"),
    ("seventy two degrees fahrenheit", "72 °F"),
    ("six feet", "6 ft"),
    # words that stay words
    ("turn left", "turn left"),
    ("open the door", "open the door"),
    ("hello world", "hello world"),
    ("eleven people", "eleven people"),
    ("nine", "nine"),
]


@pytest.fixture(scope="module")
def itn():
    pytest.importorskip(
        "nemo_text_processing", reason="inverse text normalization needs the itn extra (pip install 'speechtao[itn]')"
    )
    from speechtao.serve.transcript import InverseNormalizer

    return InverseNormalizer.load()


def test_itn_table_has_enough_cases():
    assert len(ITN_CASES) >= 40 and len({s for s, _ in ITN_CASES}) == len(ITN_CASES)


@pytest.mark.parametrize("spoken,written", ITN_CASES, ids=[s for s, _ in ITN_CASES])
def test_inverse_text_normalization(itn, spoken, written):
    assert itn(spoken) == written


def spoken_words(text, step=300):
    return [Word(w, i * step, i * step + step - 50, 0.9 - 0.01 * i) for i, w in enumerate(text.split())]


def test_written_tokens_keep_the_times_of_their_spoken_words():
    spoken = spoken_words("it costs twenty five dollars and fifty cents please")
    got = align_words(spoken, "it costs $25.50 please")
    assert [(w.word, w.start_ms, w.end_ms) for w in got] == [
        ("it", 0, 250),
        ("costs", 300, 550),
        ("$25.50", 600, 2350),  # "twenty" starts at 600, "cents" ends at 2350
        ("please", 2400, 2650),
    ]
    assert got[2].confidence == pytest.approx(min(w.confidence for w in spoken[2:8]))
    # several written tokens from several spoken words split them in order
    got = align_words(spoken_words("at seven a m"), "at 07:00 a.m.")
    assert [(w.word, w.start_ms, w.end_ms) for w in got] == [("at", 0, 250), ("07:00", 300, 550), ("a.m.", 600, 1150)]
    assert align_words([], "") == ()


def test_pipeline_verbatim_itn_masking_and_punctuation(itn):
    post = TranscriptPipeline(itn, load_profanity(None))
    words = spoken_words("damn it costs twenty five dollars")
    text, out = post.final(words, "damn it costs twenty five dollars", verbatim=True, profanity_filter=False)
    assert text == "damn it costs twenty five dollars" and [w.word for w in out] == text.split()
    text, out = post.final(words, "damn it costs twenty five dollars", verbatim=False, profanity_filter=True)
    assert text == "d*** it costs $25" and [w.word for w in out] == ["d***", "it", "costs", "$25"]
    assert (out[-1].start_ms, out[-1].end_ms) == (words[3].start_ms, words[5].end_ms)
    text, _ = post.final(
        words, " ".join(w.word for w in words), verbatim=False, profanity_filter=False, punctuate=str.upper
    )
    assert text == "DAMN IT COSTS $25"
    assert post.interim("oh shit", profanity_filter=True) == "oh s***"


def test_profanity_masking_and_word_lists(tmp_path):
    default = load_profanity(None)
    assert "fuck" in default and "hello" not in default
    assert mask_word("Damn,", default) == "D***," and mask_word("hello", default) == "hello"
    assert mask_text("what the fuck is this shit", default) == "what the f*** is this s***"
    own = tmp_path / "profanity.txt"
    own.write_text("# a model's own list\nheck\n")
    assert mask_text("oh heck damn", load_profanity(own)) == "oh h*** damn"
    from speechtao.errors import InputError

    with pytest.raises(InputError, match="cannot read the profanity word list"):
        load_profanity(tmp_path / "missing.txt")
