"""The English text normalizer used for training labels and for WER scoring alike.

:func:`normalize_text` maps written English to the spoken form over NeMo's English character vocabulary
(``a``-``z``, space, apostrophe)::

    normalize_text("On May 1st, 1999 at 10:30 we paid $5.50 (a 3.5% fee) & left.")
    # "on may first nineteen ninety nine at ten thirty we paid five dollars fifty cents a three point five
    #  percent fee and left"

The pipeline, in order (each step is one regular expression):

1. Unicode NFKC, lowercase; curly quotes and primes become ``'`` or ``"``; accented Latin letters lose their
   accents (``café`` -> ``cafe``; ``æ`` -> ``ae``, ``ß`` -> ``ss``).
2. Numbers in context: currency (``$5`` -> ``five dollars``, ``$1.5 million`` -> ``one point five million
   dollars``, ``£`` pounds, ``€`` euros), percent, times (``10:30`` -> ``ten thirty``, ``10:00`` -> ``ten
   o'clock``, ``5pm`` -> ``five p m``), ordinals (``21st`` -> ``twenty first``), decades (``1990s`` ->
   ``nineteen nineties``), signs (``-5`` -> ``minus five``, ``#5`` -> ``number five``).
3. Other numbers: four-digit numbers 1100-2099 read as years (``1999`` -> ``nineteen ninety nine``,
   ``1500`` -> ``fifteen hundred``, ``2005`` -> ``two thousand five``); other integers as cardinals with
   scale words up to the quintillions (``1,000,000`` -> ``one million``); decimals read their fraction digit
   by digit (``3.05`` -> ``three point zero five``); numbers with a leading zero or more than 21 digits are
   read digit by digit.
4. Symbols to words: ``&`` and, ``+`` plus, ``@`` at, ``=`` equals, ``%`` percent, ``#`` number, ``°``
   degrees, ``×`` times; ``c#`` -> ``c sharp``; simple fractions ``3/4`` -> ``three quarters``.
5. Hyphens become spaces; apostrophes survive only inside words (``don't``, ``o'clock``); every other
   character becomes a space; whitespace is collapsed.

The output holds only ``a``-``z``, ``'`` and single spaces, with no leading or trailing space. The function is
deterministic and pure; the same function scores WER, so both sides of a comparison see the same rules.
Four-digit numbers are ambiguous (``1999 people``); they are always read as years, on both sides.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "number_to_words", "ordinal_words", "year_words", "OUTPUT_ALPHABET"]

OUTPUT_ALPHABET = frozenset(" abcdefghijklmnopqrstuvwxyz'")

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion"]
_MAX_GROUPS = len(_SCALES)  # numbers with more digits than 3 * _MAX_GROUPS are read digit by digit

_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def _digits(s: str) -> str:
    return " ".join(_ONES[int(c)] for c in s)


def number_to_words(n: int) -> str:
    """Cardinal words of an integer: ``-1234`` -> ``"minus one thousand two hundred thirty four"``.

    Integers beyond the quintillions are read digit by digit.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    s = str(n)
    if len(s) > 3 * _MAX_GROUPS:
        return _digits(s)
    words: list[str] = []
    groups = []
    while n:
        n, g = divmod(n, 1000)
        groups.append(g)
    for scale in range(len(groups) - 1, -1, -1):
        g = groups[scale]
        if g:
            words += _below_thousand(g)
            if scale:
                words.append(_SCALES[scale])
    return " ".join(words)


def ordinal_words(n: int) -> str:
    """``21`` -> ``"twenty first"``, ``100`` -> ``"one hundredth"``."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """Read a year: ``1999`` -> ``"nineteen ninety nine"``, ``1905`` -> ``"nineteen oh five"``,
    ``1900`` -> ``"nineteen hundred"``, ``2005`` -> ``"two thousand five"``, ``2010`` -> ``"twenty ten"``."""
    if not 1000 <= n <= 9999 or n % 1000 == 0 or 2000 < n < 2010:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return number_to_words(high) + " oh " + _ONES[low]
    return number_to_words(high) + " " + number_to_words(low)


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def _int_text(s: str) -> str:
    """Words of a digit string (commas allowed as thousands separators)."""
    s = s.replace(",", "")
    if len(s) > 1 and s[0] == "0":
        return _digits(s)
    return number_to_words(int(s))


def _decimal_text(s: str) -> str:
    """``"3.05"`` -> ``"three point zero five"``; ``"1.2.3"`` -> ``"one point two point three"``."""
    head, *fractions = s.split(".")
    out = [_int_text(head)] if head else ["point"]
    for i, frac in enumerate(fractions):
        if head or i:
            out.append("point")
        out.append(_digits(frac))
    return " ".join(out)


def _number_text(s: str) -> str:
    """A plain number token: integer (maybe with comma groups), decimal, or a year-like 4-digit integer."""
    if "." in s:
        return _decimal_text(s)
    if len(s) == 4 and s[0] != "0" and 1100 <= int(s) <= 2099:
        return year_words(int(s))
    return _int_text(s)


# --- step 1: characters -----------------------------------------------------------------------------------

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "`": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": " - ",
        "\u2015": " - ",
        "\u2212": "-",
        "\u2044": "/",
        "\u00e6": "ae",
        "\u0153": "oe",
        "\u00df": "ss",
        "\u00f8": "o",
        "\u00f0": "d",
        "\u00fe": "th",
        "\u0142": "l",
        "\u0131": "i",
    }
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --- step 2: numbers in context ----------------------------------------------------------------------------

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
_SCALE_WORDS = "thousand|million|billion|trillion"
_MONEY_RE = re.compile(rf"([$£€])\s?({_NUM})(?:\s?({_SCALE_WORDS})\b)?")
_PERCENT_RE = re.compile(rf"(?<![\d.,])({_NUM})\s?%")
_TIME_RE = re.compile(r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\s?([ap])\.?m\b\.?)?(?![\d:])")
_CLOCK_RE = re.compile(r"(?<![\d:.,])(\d{1,2})\s?([ap])\.?m\b\.?")
_ORDINAL_RE = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th)\b")
_DECADE_RE = re.compile(r"(?<![\d.,])'?(\d+)'?s\b")
_SIGNED_RE = re.compile(r"(?:^|(?<=[\s(\[\"'/=]))([-+#])(?=\d)")
_FRACTION_RE = re.compile(r"(?<![\d/.,])(\d)/(\d{1,2})(?![\d/])")
_SHARP_RE = re.compile(r"(?<=\b[a-g])#")
_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]\d)|\d+(?:\.\d+)*|(?<![\w.])\.\d+")
_HAS_DIGIT = re.compile(r"\d")


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    amount, scale = m.group(2), m.group(3)
    if scale:
        return f" {_number_text(amount)} {scale} {many} "
    whole, _, frac = amount.replace(",", "").partition(".")
    words = []
    if int(whole) or not frac or len(frac) != 2:
        if frac and len(frac) != 2:  # $1.5 -> one point five dollars
            return f" {_decimal_text(amount.replace(',', ''))} {many} "
        words.append(f"{_int_text(whole)} {one if int(whole) == 1 else many}")
    if frac and int(frac):
        cents = int(frac)
        words.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " " + " ".join(words) + " "


def _percent(m: re.Match) -> str:
    return f" {_number_text(m.group(1))} percent "


def _ampm(letter: str | None) -> str:
    return f" {letter} m" if letter else ""


def _time(m: re.Match) -> str:
    hour, minute, second, ampm = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    if hour > 24:
        return m.group(0).replace(":", " ")
    words = number_to_words(hour)
    if minute == "00" and not second:
        words += "" if ampm else " o'clock"
    elif minute[0] == "0":
        words += " oh " + _ONES[int(minute[1])]
    else:
        words += " " + number_to_words(int(minute))
    if second:
        words += " " + number_to_words(int(second)) + " seconds"
    return f" {words}{_ampm(ampm)} "


def _clock(m: re.Match) -> str:
    hour = int(m.group(1))
    if not 1 <= hour <= 12:
        return m.group(0)
    return f" {number_to_words(hour)}{_ampm(m.group(2))} "


def _ordinal(m: re.Match) -> str:
    return f" {ordinal_words(int(m.group(1).replace(',', '')))} "


def _decade(m: re.Match) -> str:
    words = _number_text(m.group(1)).split()
    words[-1] = _plural(words[-1])
    return " " + " ".join(words) + " "


_SIGN_WORDS = {"-": " minus ", "+": " plus ", "#": " number "}


def _signed(m: re.Match) -> str:
    return _SIGN_WORDS[m.group(1)]


def _fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if not 0 < num < den <= 10:
        return m.group(0)
    if den == 2:
        name = "half"
    elif den == 4:
        name = "quarter"
    else:
        name = ordinal_words(den)
    if num > 1:
        name = name[:-1] + "ves" if name == "half" else name + "s"
    return f" {_ONES[num]} {name} "


def _number(m: re.Match) -> str:
    return f" {_number_text(m.group(0))} "


# --- step 4-5: symbols and punctuation ---------------------------------------------------------------------

_SYMBOLS = str.maketrans(
    {
        "&": " and ",
        "+": " plus ",
        "@": " at ",
        "=": " equals ",
        "%": " percent ",
        "#": " number ",
        "°": " degrees ",
        "×": " times ",
        "-": " ",
        "_": " ",
        '"': " ",
    }
)
_APOSTROPHE_RE = re.compile(r"(?<![a-z])'|'(?![a-z])")
_OTHER_RE = re.compile(r"[^a-z' ]+")
_SPACES_RE = re.compile(r" {2,}")


def normalize_text(text: str) -> str:
    """Written English -> spoken form over ``a``-``z``, ``'`` and space. See the module docstring."""
    s = unicodedata.normalize("NFKC", text).lower().translate(_CHAR_MAP)
    if _NON_ASCII.search(s):
        s = _strip_accents(s)
    if _HAS_DIGIT.search(s):
        s = _MONEY_RE.sub(_money, s)
        s = _PERCENT_RE.sub(_percent, s)
        s = _TIME_RE.sub(_time, s)
        s = _CLOCK_RE.sub(_clock, s)
        s = _ORDINAL_RE.sub(_ordinal, s)
        s = _DECADE_RE.sub(_decade, s)
        s = _FRACTION_RE.sub(_fraction, s)
        s = _SIGNED_RE.sub(_signed, s)
        s = _NUMBER_RE.sub(_number, s)
    if "#" in s:
        s = _SHARP_RE.sub(" sharp ", s)
    s = s.translate(_SYMBOLS)
    s = _APOSTROPHE_RE.sub(" ", s)
    s = _OTHER_RE.sub(" ", s)
    return _SPACES_RE.sub(" ", s).strip()
