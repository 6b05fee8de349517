"""Telugu speech synthesized locally with espeak-ng's Telugu voice (no downloads)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from models.speech.audio import read_audio


def synthesize(
    text: str,
    rate: int,
    voice: str = "te",
    speed: int = 160,
    pitch: int | None = None,
    amplitude: int | None = None,
    range_pct: int | None = None,
) -> np.ndarray:
    """Speak `text` with espeak-ng (`voice` such as "te" or "te+f2", `speed` in words per
    minute, `pitch` 0-99, `amplitude` 0-200, `range_pct` the SSML pitch range); mono float32
    at `rate`."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    command = ["espeak-ng", "-v", voice, "-s", str(speed)]
    if pitch is not None:
        command += ["-p", str(pitch)]
    if amplitude is not None:
        command += ["-a", str(amplitude)]
    if range_pct is not None:
        command.append("-m")
        text = f'<speak><prosody range="{range_pct}%">{escape(text)}</prosody></speak>'
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([*command, "-w", str(wav), text], check=True, capture_output=True)
        return read_audio(wav, rate)
