"""stdout and stderr reach both the terminal (untouched) and logs/console.log (as lines)."""

from __future__ import annotations

from runpoint import query

from .conftest import run_script


def test_output_is_teed_and_progress_bars_collapse_to_their_last_state(tmp_path, root) -> None:
    result = run_script(tmp_path, root, """
        import sys, runpoint as rp
        with rp.init(project="p", id="r1") as run:
            print("hello")
            print("to stderr", file=sys.stderr)
            for i in range(101):
                sys.stdout.write(f"\\rprogress {i:3d}%")
                sys.stdout.flush()
            sys.stdout.write("\\n")
            sys.stdout.write("windows line\\r\\n")
            print("unicode: αβγ ✓")
            sys.stdout.write("no newline at the end")
        print("after the run")
    """)
    assert result.returncode == 0, result.stderr
    assert "\rprogress 100%" in result.stdout and "\rprogress  50%" in result.stdout  # terminal untouched
    assert result.stdout.endswith("no newline at the endafter the run\n")
    assert result.stderr == "to stderr\n"
    log = (root / "p" / "r1" / "logs" / "console.log").read_text(encoding="utf-8")
    assert log == (
        "hello\n"
        "to stderr\n"
        "progress 100%\n"
        "windows line\n"
        "unicode: αβγ ✓\n"
        "no newline at the end\n"
    )


def test_isatty_and_fileno_answer_as_the_real_stream(tmp_path, root) -> None:
    result = run_script(tmp_path, root, """
        import sys, runpoint as rp
        before = (sys.stdout.isatty(), sys.stdout.fileno(), sys.stdout.encoding)
        with rp.init(project="p", id="r1") as run:
            during = (sys.stdout.isatty(), sys.stdout.fileno(), sys.stdout.encoding)
            assert type(sys.stdout).__name__ == "_Tee"
        assert type(sys.stdout).__name__ != "_Tee"      # restored at finish
        print(before == during)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("True")


def test_console_capture_can_be_turned_off(tmp_path, root) -> None:
    result = run_script(tmp_path, root, """
        import runpoint as rp
        with rp.init(project="p", id="r1") as run:
            print("not captured")
    """, RUNPOINT_CONSOLE="0")
    assert result.returncode == 0, result.stderr
    assert not (root / "p" / "r1" / "logs" / "console.log").exists()


def test_a_forked_child_does_not_duplicate_the_parents_lines(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import os, runpoint as rp
        with rp.init(project="p", id="r1") as run:
            print("parent before fork")
            run.log({"x": 1.0}, step=0)
            pid = os.fork()
            if pid == 0:
                print("child says hi")
                run.log({"x": 99.0}, step=5)       # ignored, with a warning
                run.summary["from_child"] = 1      # ignored too
                run.flush()
                os._exit(0)
            os.waitpid(pid, 0)
            print("parent after fork")
            run.log({"x": 2.0}, step=1)
    """)
    assert result.returncode == 0, result.stderr
    log = (root / "p" / "r1" / "logs" / "console.log").read_text()
    assert log.count("parent before fork") == 1
    assert log.count("child says hi") == 1
    assert log.count("parent after fork") == 1
    assert "forked child" in result.stderr
    assert store_at().read_metric("r1", "x").values.tolist() == [1.0, 2.0]
    assert "from_child" not in query.full_summary(store_at(), "r1")
