"""Models of the Telugu speech-to-speech agent: voice and emotion controls, codec, transformer."""
