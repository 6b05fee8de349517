"""TeluCodec: the causal streaming neural codec between 16 kHz speech and discrete codes."""

from models.codec.codec import DecoderState, EncoderState, TeluCodec

__all__ = ["DecoderState", "EncoderState", "TeluCodec"]
