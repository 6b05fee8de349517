"""Text: the Telugu tokenizer (tokenizer.py) and its training on the corpus's text bank
(training.py)."""
