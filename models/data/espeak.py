"""Telugu speech synthesized locally with espeak-ng's Telugu voice (no downloads)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from agent.audio import read_audio


def synthesize(text: str, rate: int, voice: str = "te", speed: int = 160) -> np.ndarray:
    """Speak `text` with espeak-ng (`voice` such as "te" or "te+f2", `speed` in words per
    minute); mono float32 at `rate`."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        return read_audio(wav, rate)
