"""Run search pieces that need no database:

- ``tokens.py``: the tokenizer (identifiers with their entity and key, values, operators);
- ``grammar.py``: the filter and order-by grammar (parse trees, errors with carets);
- ``compare.py``: runs side by side (`RunComparison`) and its markdown report.
"""
