"""The multi-rank harness and runpoint.distributed's collectives, on real gloo ranks."""

from __future__ import annotations

from .multirank import launch


def test_ranks_agree_and_share_an_error(tmp_path, root):
    job = launch("""
        from runpoint.distributed import current, all_gather_objects, share_outcome, same_everywhere
        ranks = current()
        assert ranks is not None and ranks.group_ready and ranks.world_size == 3
        print("gathered", all_gather_objects(ranks.rank * 10))
        print("shared", share_outcome(lambda: "from zero"))
        try:
            share_outcome(lambda: 1 / 0)
        except Exception as exc:
            print("error", type(exc).__name__, exc)
        try:
            same_everywhere(ranks.rank // 2, "the step")
        except Exception as exc:
            print("differ", exc)
    """, 3, tmp_path, root)
    assert job.wait(60) == [0, 0, 0], job.logs()
    for rank in range(3):
        log = job.log(rank)
        assert "gathered [0, 10, 20]" in log
        assert "shared from zero" in log
        expected = "ZeroDivisionError division by zero" if rank == 0 else "RemoteRankError rank 0 failed: ZeroDivisionError"
        assert f"error {expected}" in log, log
        assert "differ the ranks disagree on the step (rank 0: 0, rank 2: 1)" in log, log


def test_rank_zero_publishes_without_waiting_and_the_others_receive_or_time_out(tmp_path, root):
    job = launch("""
        import time
        from runpoint.distributed import current, publish, receive, arrivals
        ranks = current()
        if ranks.rank == 0:
            publish("value/1", {"id": "abc"})
            print("published")
        else:
            print("received", receive("value/1", timeout=30)["id"])
            try:
                receive("never", timeout=0.5)
            except Exception as exc:
                print("timeout", exc)
        if ranks.rank != 2:
            publish(f"here/{ranks.rank}", 1)
        if ranks.rank == 0:
            print("missing", arrivals("here", range(3), timeout=1.0))
        dist.barrier()
    """, 3, tmp_path, root)
    assert job.wait(60) == [0, 0, 0], job.logs()
    assert "published" in job.log(0)
    for rank in (1, 2):
        assert "received abc" in job.log(rank)
        assert "timeout waited 0 s for rank 0 (never) in vain" in job.log(rank), job.log(rank)
    assert "missing [2]" in job.log(0)
