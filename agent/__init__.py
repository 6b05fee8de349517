"""The real-time agent: one WebRTC session per call, from received Opus to the answer track.

Its top level is the call path; aiortc_fixes/ holds the repairs of aiortc and aioice, caller/
the headless caller and its tools, process/ the server process's housekeeping."""
