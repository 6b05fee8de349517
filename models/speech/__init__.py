"""Speech as the models, the evaluations and the agent's call path all hear it: audio files,
resampling and windows (audio.py), Silero VAD (vad.py) and the turn-taking rules (turns.py).

It imports av, soundfile and the Silero package only in its modules, never here: S2S
training from a codes cache (`python -m models.train`) runs without them.
"""
