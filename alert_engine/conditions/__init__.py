"""Rule conditions: CEL expressions, the numeric fast path, regular expressions, sentiment."""
