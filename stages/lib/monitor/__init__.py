"""The monitor stage's library: performance estimation without labels, intervals, segment drift."""
