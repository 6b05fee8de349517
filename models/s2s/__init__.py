"""The streaming speech-to-speech transformer: Conformer encoder, GPT decoder, generation."""
