"""HTTP signaling for the agent: call page, SDP offer/answer, ICE configuration, health, metrics."""
