"""The memory: the store interface and its backends, fuzzy and semantic indexes, matching."""
