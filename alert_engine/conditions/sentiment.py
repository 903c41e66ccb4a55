"""`sentiment(text)` for conditions: VADER's compound score, -1 (negative) to 1 (positive).

VADER is a lexicon and rules shipped inside the `vadersentiment` package: nothing is downloaded at
run time. Comments are short and scoring one takes about 0.1 ms, so scores are cached by text: many
rules reading the same comment score it once.
"""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

_analyzer = SentimentIntensityAnalyzer()


@lru_cache(maxsize=4096)
def sentiment(text: str | None) -> float:
    """Null or empty text is neutral (0.0): a rating without a comment is not a negative one."""
    if not text or not isinstance(text, str):
        return 0.0
    return float(_analyzer.polarity_scores(text)["compound"])
