"""The COLO checkpoint cycle model (migration/colo.c semantics, spec 2.8 and Q18)."""

from colo_replay.offline.checkpoints import MEASURED, PERIODIC, REQUESTED, CheckpointModel

MS = 1_000_000


def trace(model, requests, until):
    """Feed requests at the given times, advancing the model in between; return the actions."""
    out = []
    for t in sorted(requests):
        out += model.advance(t)
        out += model.request(t)
    out += model.advance(until)
    return [(a.kind, a.time // MS, a.cause) for a in out]


def test_request_starts_checkpoint_and_flushes_after_duration():
    m = CheckpointModel(0, 100 * MS, 0, coalesce=True)
    assert trace(m, [1000 * MS], 5000 * MS) == [("start", 1000, REQUESTED), ("end", 1100, REQUESTED)]
    assert m.count == 1 and m.requests == 1


def test_requests_during_a_checkpoint_coalesce_in_7_2():
    m = CheckpointModel(0, 100 * MS, 0, coalesce=True)
    acts = trace(m, [1000 * MS, 1010 * MS, 1020 * MS, 1030 * MS], 5000 * MS)
    assert acts == [("start", 1000, REQUESTED), ("end", 1100, REQUESTED),
                    ("start", 1100, REQUESTED), ("end", 1200, REQUESTED)]


def test_requests_during_a_checkpoint_queue_up_in_4_1():
    m = CheckpointModel(0, 100 * MS, 0, coalesce=False)
    acts = trace(m, [1000 * MS, 1010 * MS, 1020 * MS], 5000 * MS)
    assert [a for a in acts if a[0] == "start"] == [("start", 1000, REQUESTED), ("start", 1100, REQUESTED),
                                                    ("start", 1200, REQUESTED)]
    assert m.count == 3


def test_periodic_checkpoint_is_rearmed_by_every_request():
    m = CheckpointModel(0, 50 * MS, 20000 * MS, coalesce=True)
    acts = trace(m, [15000 * MS], 60000 * MS)
    starts = [a for a in acts if a[0] == "start"]
    # request at 15 s re-arms the timer to 35 s; then every 20 s
    assert starts == [("start", 15000, REQUESTED), ("start", 35000, PERIODIC), ("start", 55000, PERIODIC)]


def test_zero_delay_disables_periodic():
    m = CheckpointModel(0, 50 * MS, 0, coalesce=True)
    assert trace(m, [], 100000 * MS) == []


def test_measured_times_replace_the_model():
    m = CheckpointModel(0, 50 * MS, 20000 * MS, coalesce=True, measured=[3000 * MS, 1000 * MS])
    acts = trace(m, [500 * MS], 60000 * MS)
    assert acts == [("start", 1000, MEASURED), ("end", 1000, MEASURED), ("start", 3000, MEASURED),
                    ("end", 3000, MEASURED)]
    assert m.requests == 1


def test_finish_drives_the_model_on_a_real_clock():
    """``finish(t)`` (live --flush-on-request): the end comes when the timer fired, and the
    owed checkpoint starts then, not at the scheduled end."""
    for coalesce in (True, False):
        m = CheckpointModel(0, 100, 0, coalesce)
        assert [(a.kind, a.time) for a in m.request(0)] == [("start", 0)]
        assert m.request(10) == [] and m.request(20) == []
        acts = m.finish(130)                          # the timer fired 30 ns late
        assert [(a.kind, a.time) for a in acts] == [("end", 130), ("start", 130)] and m.running_until == 230
        rest = m.finish(240)
        assert [a.kind for a in rest] == (["end"] if coalesce else ["end", "start"])
        assert m.count == 2 + (not coalesce) and m.requests == 3
        if not coalesce:
            assert [a.kind for a in m.finish(400)] == ["end"]
        assert m.finish(500) == [] and m.running_until is None
