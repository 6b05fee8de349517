"""Loading Silero VAD leaves the process's torch threads alone."""

from __future__ import annotations

import subprocess
import sys


def test_loading_silero_keeps_the_torch_thread_count() -> None:
    # the silero-vad package sets torch's intra-op threads to 1 when imported; in a fresh
    # process (here the package may already be imported) the agent puts the count back
    script = (
        "import torch; torch.set_num_threads(2); "
        "from models.speech.vad import SileroVAD; SileroVAD(); print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"
