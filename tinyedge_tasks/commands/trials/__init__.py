"""The trials of `doit sweep` and `doit tune`: experiments over manifest values, one mechanism for both.

A variant is a set of manifest overrides built in its own project folder (its own tinyedge.yaml, boards/ and
dodo.py, under build/sweep/ or build/tune/) by a real `python -m doit` process, with $TINYEDGE_CACHE pointing at
the project's store: a stage any earlier variant (or the project itself) computed is restored, not rebuilt.
"""
