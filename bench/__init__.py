"""A reproducible benchmark of ccproxy against a direct upstream: C{python -m bench.run}.

See C{bench/README.md}.
"""
