"""The functions a condition may call beyond CEL's built-ins, by the name it calls them with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cel.stdlib import STDLIB_FUNCTIONS

from alert_engine.conditions.regexes import MATCH_FUNCTION, matches
from alert_engine.conditions.sentiment import sentiment

# Functions available to conditions beyond CEL's built-ins, by the name a condition calls them
# with: cel-go's string, math, list and set extensions (`lowerAscii`, `split`, `math.abs`, ...),
# and `sentiment(text)`, VADER's compound score from -1 (negative) to 1 (positive).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **STDLIB_FUNCTIONS,
    "sentiment": sentiment,
    MATCH_FUNCTION: matches,
}
# The prefixes of namespaced functions (`math`, `sets`, `base64`, ...).
NAMESPACES = frozenset(name.split(".", 1)[0] for name in FUNCTIONS if "." in name)
