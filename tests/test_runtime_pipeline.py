"""The pipeline's threads with trivial engines: order, completeness, errors, shutdown, memory."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from hetsched.runtime.channel import Aborted, Channel, EndOfStream
from hetsched.runtime.pipeline import PipelineError, Stopped
from runtime_helpers import CountingSource, ListSink, chain, hetsched_threads, make, pre


def test_channel_ends_after_last_producer_and_drains():
    ch = Channel("c", 4, producers=2)
    ch.put(1)
    ch.producer_done()
    ch.put(2)
    ch.producer_done()
    assert [ch.get(), ch.get()] == [1, 2]
    with pytest.raises(EndOfStream):
        ch.get()


def test_channel_abort_wakes_blocked_put_and_get():
    full, empty = Channel("full", 1), Channel("empty", 1)
    full.put(0)
    errors = []

    def blocked(fn):
        try:
            fn()
        except Aborted:
            errors.append(fn)
    threads = [threading.Thread(target=blocked, args=(lambda: full.put(1),)),
               threading.Thread(target=blocked, args=(empty.get,))]
    for t in threads:
        t.start()
    time.sleep(0.1)
    full.abort()
    empty.abort()
    for t in threads:
        t.join(1)
    assert len(errors) == 2 and not any(t.is_alive() for t in threads)


def test_channel_drop_oldest():
    ch = Channel("c", 2)
    for i in range(5):
        ch.put(i, drop_oldest=True)
    assert ch.dropped == 3 and [ch.get(), ch.get()] == [3, 4]


@pytest.mark.parametrize("pre_threads,post_threads,buffers", [(1, 1, 1), (3, 3, 2), (2, 4, 5)])
def test_every_frame_once_in_order(pre_threads, post_threads, buffers):
    sink = ListSink()
    stages = chain(4, replicate={2: ["a", "b"], 3: ["c", "d", "e"]})
    pipe = make(CountingSource(300), stages, sink, buffers=buffers, pre_threads=pre_threads,
                post_threads=post_threads)
    assert pipe.delivered == 0
    report = pipe.run()
    assert pipe.delivered == len(sink.items) == 300
    assert [s for s, _, _ in sink.items] == list(range(300))
    assert [v for _, _, v in sink.items] == [i + 4 for i in range(300)]  # four +1 stages, none skipped
    assert report.frames == 300 and sink.kept is True
    busy = {w.pe: w.frames for w in report.workers}
    assert busy["a"] == busy["b"] == 150 and busy["c"] == busy["d"] == busy["e"] == 100  # round robin
    assert not hetsched_threads()


def test_the_pools_report_their_cpu_apart_from_their_wall_time():
    """Pre-processing that sleeps 4 ms and spins 2 ms of its own CPU a frame: the report's
    pre pool is busy >= 6 ms a frame, of which only the spin is its CPU (what the closing-loop
    check simulates with: a thread waiting for the interpreter lock or a core spends none)."""
    from hetsched.runtime.pipeline import Pipeline

    def slow_pre(frame):
        time.sleep(0.004)
        c0 = time.thread_time()
        while time.thread_time() - c0 < 0.002:
            pass
        pre(frame)
    sink = ListSink()
    report = Pipeline(CountingSource(20), chain(1), pre=slow_pre, post=lambda f: None,
                      sinks=[sink]).run()
    pools = report.to_dict()["pools"]
    assert report.frames == 20 and len(sink.items) == 20
    assert pools["pre"]["ms_per_frame"] >= 6.0
    assert 2.0 <= pools["pre"]["cpu_ms_per_frame"] < pools["pre"]["ms_per_frame"] - 3.5
    assert pools["post"]["cpu_ms_per_frame"] < 1.0


def test_pe_serving_two_stages_runs_one_frame_at_a_time():
    running, peak = [0], [0]
    lock = threading.Lock()

    class Probe:
        def __init__(self, k):
            self.k = k

        def run(self, feeds):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.002)
            with lock:
                running[0] -= 1
            return {f"t{self.k}": feeds[f"t{self.k - 1}"] + 1}

        def close(self):
            pass
    from hetsched.runtime.pipeline import Stage, Worker
    stages = [Stage([Worker("cpu0", lambda: Probe(1))]), Stage([Worker("cpu1", lambda: Probe(2))]),
              Stage([Worker("cpu0", lambda: Probe(3))])]
    sink = ListSink()
    make(CountingSource(50), stages, sink).run()
    assert len(sink.items) == 50
    assert peak[0] <= 2  # cpu0's two stages never overlap; cpu1 may run beside one of them


def test_stage_error_names_stage_pe_and_frame():
    sink = ListSink()
    t0 = time.monotonic()
    with pytest.raises(PipelineError) as e:
        make(CountingSource(None), chain(3, pes=["cpu0", "cpu1", "cpu0"], fail=(2, 37)), sink).run()
    assert time.monotonic() - t0 < 5
    assert str(e.value).startswith("stage 1 on cpu1 failed on frame 37: ValueError: bad tensor")
    assert e.value.report.frames <= 37 and sink.kept is False
    assert not hetsched_threads()


def test_source_failing_mid_stream():
    with pytest.raises(PipelineError, match=r"source 'counting' failed at frame 12: OSError: disk went away"):
        make(CountingSource(None, fail_at=12), chain(2), ListSink()).run()
    assert not hetsched_threads()


def test_engine_that_cannot_load():
    from hetsched.runtime.pipeline import Stage, Worker

    def broken():
        raise RuntimeError("no such device")
    stages = [Stage([Worker("gpu", broken)])]
    with pytest.raises(PipelineError, match="stage 0 on gpu: cannot load the engine: RuntimeError: no such device"):
        make(CountingSource(10), stages, ListSink()).run()
    assert not hetsched_threads()


def test_stop_from_another_thread_ends_within_a_second_with_slow_sink():
    sink = ListSink(delay=0.2)   # backpressure all the way to the source
    pipe = make(CountingSource(None), chain(3), sink)
    timer = threading.Timer(0.5, pipe.stop, args=("test",))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(Stopped) as e:
        pipe.run(handle_signals=False)
    stopped_after = time.monotonic() - t0 - 0.5
    assert stopped_after < 1.0, stopped_after
    assert e.value.reason == "test" and e.value.report.frames >= 1
    assert sink.kept is True  # a user stop keeps what was completely written
    assert not hetsched_threads()


def test_sink_blocked_forever_is_named_and_run_still_returns():
    gate = threading.Event()
    sink = ListSink(block=gate)
    pipe = make(CountingSource(None), chain(2), sink)
    threading.Timer(0.3, pipe.stop, args=("test",)).start()
    t0 = time.monotonic()
    with pytest.raises(Stopped) as e:
        pipe.run(handle_signals=False)
    assert time.monotonic() - t0 < 0.3 + 1.5
    assert e.value.report.leaked_threads == ["hetsched-sink"]
    gate.set()  # what a blocked write does once its reader goes away
    deadline = time.monotonic() + 2
    while hetsched_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not hetsched_threads()


def test_latest_mode_drops_but_keeps_order():
    sink = ListSink()
    report = make(CountingSource(200), chain(2, delay=0.003), sink, mode="latest").run()
    seqs = [s for s, _, _ in sink.items]
    indices = [i for _, i, _ in sink.items]
    assert seqs == list(range(len(seqs)))
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert report.dropped == 200 - len(seqs) and report.dropped > 0


def test_soak_10000_frames_bounded_memory():
    proc = psutil.Process()
    rss = []

    class Sampling(ListSink):
        def write(self, frame):
            if frame.seq % 1000 == 0:
                rss.append(proc.memory_info().rss)
            self.items.append(frame.seq)
    sink = Sampling()
    make(CountingSource(10_000), chain(4), sink, buffers=2).run()
    assert sink.items == list(range(10_000))
    growth = max(rss[2:]) - rss[2]
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 8,000 frames"


SIGNAL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from runtime_helpers import CountingSource, ListSink, chain, make
    from hetsched.runtime.pipeline import Stopped
    sink = ListSink()
    pipe = make(CountingSource(None, delay=0.001), chain(3, delay=0.01), sink)
    import threading
    threading.Timer(0.3, lambda: print("running", flush=True)).start()
    try:
        pipe.run()
    except Stopped as e:
        print("stopped", e.reason, e.report.frames, sink.kept, e.report.leaked_threads, flush=True)
        sys.exit(130 if e.reason == "SIGINT" else 143)
""")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_end_the_pipeline_within_a_second(sig, code):
    tests = os.path.dirname(__file__)
    p = subprocess.Popen([sys.executable, "-c", SIGNAL_SCRIPT.format(tests=tests)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "running"
    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=10)
    elapsed = time.monotonic() - t0
    assert p.returncode == code, err
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert out.startswith(f"stopped {name} ") and out.strip().endswith("True []")
    assert elapsed < 1.0, elapsed


def test_steady_rate_leaves_out_the_fill_and_the_drain():
    """Hand-made delivery times: the first frame after a 1 s fill, then one every 0.1 s (10 fps);
    once the source has read its last frame the host works no more and the frames still in
    the buffers drain faster; two members that deliver in pairs every 0.2 s."""
    from hetsched.runtime.report import Report
    fill = Report(20, 2.9, done_s=[1.0 + 0.1 * i for i in range(20)])
    assert fill.fps == pytest.approx(20 / 2.9) and fill.steady_fps == pytest.approx(10.0)
    drain = [1.0 + 0.1 * i for i in range(30)] + [3.9 + 0.05 * k for k in range(1, 11)]
    assert Report(40, 4.4, done_s=drain, last_read_s=3.9).steady_fps == pytest.approx(10.0)
    assert Report(40, 4.4, done_s=drain).steady_fps > 11
    pairs = [1.0 + 0.2 * (i // 2) for i in range(40)]
    assert Report(40, 4.9, done_s=pairs).steady_fps == pytest.approx(10.0, rel=0.01)
    assert Report(5, 1.0, done_s=[0.2, 0.4, 0.6, 0.8, 1.0]).steady_fps == 5.0   # too few: fps


def test_a_run_records_one_delivery_time_per_frame_in_order():
    src, sink = CountingSource(12), ListSink()
    report = make(src, chain(2, replicate={2: ["a", "b"]}), sink).run()
    assert len(report.done_s) == report.frames == 12
    assert report.done_s == sorted(report.done_s) and report.done_s[0] > 0
    assert report.steady_fps > 0
    assert 0 < report.last_read_s <= report.done_s[-1]
