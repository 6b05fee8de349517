"""Model evaluation: speech quality metrics and the codec's evaluation on a manifest."""
