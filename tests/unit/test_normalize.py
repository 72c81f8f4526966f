import pytest

from speechtao.text.normalize import OUTPUT_ALPHABET, normalize_text, number_to_words, ordinal_words, year_words

CASES = [
    # basics: case, punctuation, whitespace
    ("Hello, World!", "hello world"),
    ("  Many   spaces\tand\nnewlines  ", "many spaces and newlines"),
    ("Wait... what?!", "wait what"),
    ("(parenthesized) [bracketed] {braced}", "parenthesized bracketed braced"),
    ("U.S.A. e.g. i.e.", "u s a e g i e"),
    # apostrophes and quotes
    ("don't o'clock rock'n'roll", "don't o'clock rock'n'roll"),
    ("It\u2019s Ben\u2019s", "it's ben's"),
    ("\u201cHello,\u201d she said.", "hello she said"),
    ("'quoted' \"double\" `backtick`", "quoted double backtick"),
    ("the dogs' bones", "the dogs bones"),
    ("\u2018tis", "tis"),
    # unicode
    ("Caf\u00e9 na\u00efve \u00c6sir stra\u00dfe", "cafe naive aesir strasse"),
    ("\ufb01ne \u2122", "fine tm"),  # NFKC ligature and trademark
    ("x \u65e5\u672c y", "x y"),  # non-Latin letters cannot be spelled with a-z
    # hyphens and dashes
    ("well-known state-of-the-art", "well known state of the art"),
    ("yes\u2014no", "yes no"),
    # cardinals
    ("0", "zero"),
    ("7 13 20 45 100 101", "seven thirteen twenty forty five one hundred one hundred one"),
    ("1,000,000", "one million"),
    ("123456789", "one hundred twenty three million four hundred fifty six thousand seven hundred eighty nine"),
    ("5000000000000", "five trillion"),
    ("1000 and 1066", "one thousand and one thousand sixty six"),
    ("2500 people", "two thousand five hundred people"),
    ("007", "zero zero seven"),
    ("-5 and \u22123", "minus five and minus three"),
    ("5-3", "five three"),
    (
        "1234567890123456789012345",
        "one two three four five six seven eight nine zero one two three four five six "
        "seven eight nine zero one two three four five",
    ),  # beyond quintillions
    # decimals and versions
    ("3.5", "three point five"),
    ("0.25", "zero point two five"),
    ("3.05", "three point zero five"),
    ("a .5 chance", "a point five chance"),
    ("-0.5", "minus zero point five"),
    ("version 3.11.2", "version three point one one point two"),
    ("It costs 5.", "it costs five"),
    # ordinals
    ("1st 2nd 3rd 4th", "first second third fourth"),
    (
        "11th 12th 13th 20th 21st 22nd 100th 101st",
        "eleventh twelfth thirteenth twentieth twenty first twenty second one hundredth one hundred first",
    ),
    # years and decades
    ("1999", "nineteen ninety nine"),
    (
        "1905 1900 2000 2005 2010 2024",
        "nineteen oh five nineteen hundred two thousand two thousand five twenty ten twenty twenty four",
    ),
    ("the 1990s and the '80s", "the nineteen nineties and the eighties"),
    ("songs from the 1930's, in 1's and 0's", "songs from the nineteen thirties in ones and zeros"),
    # times
    ("10:30", "ten thirty"),
    ("10:05", "ten oh five"),
    ("It's 10:00", "it's ten o'clock"),
    ("10:30 a.m. or 5pm or 7 PM", "ten thirty a m or five p m or seven p m"),
    ("10:30:15", "ten thirty fifteen seconds"),
    # currency and percent
    ("$5", "five dollars"),
    ("$1", "one dollar"),
    ("$5.50", "five dollars fifty cents"),
    ("$0.99", "ninety nine cents"),
    ("$1.01", "one dollar one cent"),
    ("$1,250", "one thousand two hundred fifty dollars"),
    ("$1.5 million", "one point five million dollars"),
    ("\u00a320 and \u20ac3", "twenty pounds and three euros"),
    ("5%", "five percent"),
    ("3.5 %", "three point five percent"),
    # fractions
    ("\u00bd cup, 3/4 mile, 2/3", "one half cup three quarters mile two thirds"),
    ("24/7", "twenty four seven"),
    # symbols
    ("Tom & Jerry", "tom and jerry"),
    ("2+3=5", "two plus three equals five"),
    ("me@example.com", "me at example com"),
    ("#1 fan", "number one fan"),
    ("C++ and C#", "c plus plus and c sharp"),
    ("30\u00b0", "thirty degrees"),
    ("3 \u00d7 4", "three times four"),
    # digits glued to letters
    ("mp3 covid19 4k", "mp three covid nineteen four k"),
    # the module docstring example
    (
        "On May 1st, 1999 at 10:30 we paid $5.50 (a 3.5% fee) & left.",
        "on may first nineteen ninety nine at ten thirty we paid five dollars fifty cents a three point five "
        "percent fee and left",
    ),
    # empty
    ("", ""),
    ("?!...", ""),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0][:30] for c in CASES])
def test_normalize_cases(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0][:30] for c in CASES])
def test_output_alphabet_and_idempotence(text, expected):
    out = normalize_text(text)
    assert set(out) <= OUTPUT_ALPHABET
    assert "  " not in out and out == out.strip()
    assert normalize_text(out) == out


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (15, "fifteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (110, "one hundred ten"),
        (1001, "one thousand one"),
        (10**6 + 1, "one million one"),
        (-42, "minus forty two"),
        (2 * 10**18, "two quintillion"),
        (
            10**21,
            "one zero zero zero zero zero zero zero zero zero zero zero zero "
            "zero zero zero zero zero zero zero zero zero",
        ),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [
        (1, "first"),
        (5, "fifth"),
        (9, "ninth"),
        (40, "fortieth"),
        (1000, "one thousandth"),
        (1_000_002, "one million second"),
    ],
)
def test_ordinal_words(n, words):
    assert ordinal_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [
        (1776, "seventeen seventy six"),
        (1801, "eighteen oh one"),
        (2000, "two thousand"),
        (2009, "two thousand nine"),
        (2100, "twenty one hundred"),
    ],
)
def test_year_words(n, words):
    assert year_words(n) == words


def test_every_printable_ascii_character_maps_into_the_alphabet():
    text = "".join(chr(c) for c in range(32, 127))
    out = normalize_text(text)
    assert set(out) <= OUTPUT_ALPHABET
    assert "abcdefghijklmnopqrstuvwxyz" in out.replace(" ", "")
