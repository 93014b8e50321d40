"""Scale benchmark: a synthetic estate of N observations (`generate`), the hand-written DuckDB
yardstick (`baseline.sql`), and the timed comparison (`run`). See docs/scale.md."""
