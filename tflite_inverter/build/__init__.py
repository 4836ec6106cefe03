"""Building TensorFlow from the prepared IR: the graph walk, the inverted module, ``InvertedModel``."""
