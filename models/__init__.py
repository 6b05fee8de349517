"""Models of the Telugu speech-to-speech agent: voice and emotion controls, codec, transformer,
and what they hear with (speech/: audio files, resampling, VAD, turn rules)."""
