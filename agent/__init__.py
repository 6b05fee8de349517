"""The real-time agent: one WebRTC session per call, from received Opus to the answer track."""
