"""Finding runs: the filter grammar, its translation to SQL, aggregation and comparison."""
