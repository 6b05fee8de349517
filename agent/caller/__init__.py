"""The headless caller (`telugu-s2s call`, the benchmarks, the end-to-end tests) and its
tools: link impairment under its sockets, how whole an answer arrived, the ICE pair chosen."""
