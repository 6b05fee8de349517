"""The capacity search always admits one call and never more than it is allowed; the
router's /metrics are its workers' with a `worker` label. (Admission by capacity itself:
tests/unit/test_signaling.py.)"""

from agent.process.capacity import measure_capacity
from agent.responders import make_responder


def test_the_capacity_search_admits_one_call_at_least_and_at_most_its_limit():
    parrot = make_responder("parrot")
    assert measure_capacity(parrot, budget=0.0, most=4).calls == 1  # nothing fits: one call
    roomy = measure_capacity(parrot, budget=1e9, most=5)
    assert roomy.calls == 5
    assert set(roomy.load) >= {1, 2, 4, 5}  # doubled, then searched up to the limit


def test_the_routers_metrics_are_every_workers_with_a_worker_label():
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families as parse

    from signaling.router import _Families, _merge

    worker = (
        "# HELP telugu_s2s_active_sessions Calls in progress\n"
        "# TYPE telugu_s2s_active_sessions gauge\n"
        "telugu_s2s_active_sessions {n}\n"
    )
    families: dict = {}
    _merge(families, parse(worker.format(n=2)), "0")
    _merge(families, parse(worker.format(n=3)), "1")
    registry = CollectorRegistry()
    registry.register(_Families(list(families.values())))
    text = generate_latest(registry).decode()
    assert text.count("# HELP telugu_s2s_active_sessions") == 1
    merged = {s.labels["worker"]: s.value for f in parse(text) for s in f.samples}
    assert merged == {"0": 2.0, "1": 3.0}
