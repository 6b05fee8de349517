"""Streaming Telugu speech recognizer: log-mel features, causal conv front end, unidirectional
GRU stack, CTC head over characters; greedy decoding with word timings."""
