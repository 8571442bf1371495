"""Run search pieces that need no database:

- ``grammar.py``: the filter and order-by grammar (tokens, parse trees, errors with carets);
- ``compare.py``: runs side by side (`RunComparison`) and its markdown report.
"""
