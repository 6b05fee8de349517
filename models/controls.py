"""The voices and emotion tokens the agent can be asked for (from the design document)."""

from __future__ import annotations

# Emotion tokens in the design document's order; the index is the token id.
EMOTIONS: tuple[str, ...] = (
    "NEUTRAL",
    "HAPPY",
    "LAUGH",
    "EXCITED",
    "EMPATHY",
    "SURPRISE",
    "THINKING",
    "TELUGU_ACCENT_HEAVY",
    "TELUGU_ACCENT_MILD",
)

# The four voices and the design document's description of each.
SPEAKERS: dict[str, str] = {
    "male_1": "Young professional (25-30): clear, energetic",
    "male_2": "Mature narrator (35-45): deep, authoritative",
    "female_1": "Young conversational (22-28): friendly, expressive",
    "female_2": "Professional anchor (30-40): clear, confident",
}

DEFAULT_SPEAKER = "female_1"
DEFAULT_EMOTION = "NEUTRAL"


class UnknownControlError(ValueError):
    """A speaker or emotion name that the models do not know."""

    def __init__(self, kind: str, name: object, valid: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = valid
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")


def speaker_id(name: object) -> int:
    """Index of a speaker name; raises UnknownControlError listing the valid names."""
    names = list(SPEAKERS)
    if not isinstance(name, str) or name not in SPEAKERS:
        raise UnknownControlError("speaker", name, names)
    return names.index(name)


def emotion_id(name: object) -> int:
    """Token id of an emotion name; raises UnknownControlError listing the valid names."""
    if not isinstance(name, str) or name not in EMOTIONS:
        raise UnknownControlError("emotion", name, list(EMOTIONS))
    return EMOTIONS.index(name)
