"""Alert rules: the YAML spec, the compiled ruleset, loading with file and line, fragments,
reload."""
