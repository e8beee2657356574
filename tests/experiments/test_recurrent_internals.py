

@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(tmp_path, quick_run_dir, xla_cache):
    import experiment_processes as procs

    straight = quick_run_dir("recurrent_internals")
    killed = tmp_path / "killed"
    cache = xla_cache("recurrent_internals")
    log = tmp_path / "killed.log"
    # checkpoint 30 of 60 steps: inside the adding-problem LSTM, after the char LSTM
    procs.kill_at_checkpoint(procs.start("recurrent_internals", ["--quick", "--out", str(killed)], cache_dir=cache,
                                         log=log), killed, 30, log)
    assert not (killed / "metrics.json").exists()
    procs.run("recurrent_internals", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    a, b = procs.summary_without_timings(straight), procs.summary_without_timings(killed)
    assert a == b
    assert procs.records(straight) == procs.records(killed)
    np.testing.assert_array_equal(np.load(straight / "activations.npz")["char/h"],
                                  np.load(killed / "activations.npz")["char/h"])
