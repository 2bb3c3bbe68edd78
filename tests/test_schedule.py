import re

import pytest

from wakaq import CronTask, Queue, WakaQ, WakaQError


def test_cron_task_fields() -> None:
    cron = CronTask("* * * * *", "mytask", queue="med", args=[2, 2], kwargs={"a": 1})
    assert (cron.schedule, cron.task_name, cron.queue, cron.queue_name) == ("* * * * *", "mytask", "med", "med")
    assert (cron.args, cron.kwargs) == ([2, 2], {"a": 1})
    assert CronTask("* * * * *", "t", queue=Queue("q")).queue == "q"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (("*/10 * * * *", "another"), CronTask("*/10 * * * *", "another")),
        (("*/5 * * * *", "mytask", [1, 1]), CronTask("*/5 * * * *", "mytask", args=[1, 1])),
        (("*/5 * * * *", "mytask", (1, 1), {}), CronTask("*/5 * * * *", "mytask", args=[1, 1], kwargs={})),
        (["0 0 * * *", "t", [], {"k": "v"}], CronTask("0 0 * * *", "t", kwargs={"k": "v"})),
    ],
)
def test_create_from_tuples(obj: tuple[object, ...], expected: CronTask) -> None:
    assert CronTask.create(obj) == expected


def test_create_passes_instances_through() -> None:
    cron = CronTask("* * * * *", "t")
    assert CronTask.create(cron) is cron


@pytest.mark.parametrize(
    ("obj", "pattern"),
    [
        ("* * * * *", "invalid schedule"),
        (("* * * * *",), "invalid schedule"),
        (("* * * * *", "t", [], {}, "extra"), "invalid schedule"),
        (("* * * * *", ""), "invalid task name"),
        ((None, "t"), "invalid cron schedule"),
        (("* * * * *", "t", "1,2"), "args of scheduled task 't'"),
        (("* * * * *", "t", [], [("a", 1)]), "kwargs of scheduled task 't'"),
        (("* * * * *", "t", [], {1: "a"}), "kwargs of scheduled task 't'"),
    ],
)
def test_create_rejects(obj: object, pattern: str) -> None:
    with pytest.raises(WakaQError, match=pattern):
        CronTask.create(obj)  # type: ignore[arg-type]


def test_task_object_as_name() -> None:
    app = WakaQ(queues=["q"])

    @app.task
    def mytask() -> None:
        pass

    assert CronTask("* * * * *", mytask).task_name == "mytask"


@pytest.mark.parametrize("cron", ["* * * * *", "*/5 1-3 * * mon-fri", "@hourly", "0 0 1 1 *", "* * * * * */10"])
def test_valid_crons(cron: str) -> None:
    CronTask(cron, "t").validate_cron()


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "every minute", "* * * * * * * *", "*/0 * * * *"])
def test_invalid_crons_name_the_cron_and_task(cron: str) -> None:
    with pytest.raises(WakaQError) as info:
        CronTask(cron, "nightly").validate_cron()
    assert str(info.value).startswith(f"invalid cron {cron!r} for task 'nightly': ")


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *"])
def test_an_invalid_cron_raises_at_construction_as_in_wakaq(cron: str) -> None:
    """WakaQ's CronTask checks its schedule in `__init__`, so a bad cron fails where it is written."""
    message = "^" + re.escape(f"invalid cron {cron!r} for task 'nightly': ")
    with pytest.raises(WakaQError, match=message):
        CronTask(cron, "nightly")
    with pytest.raises(WakaQError, match=message):
        CronTask.create((cron, "nightly"))


def test_app_readme_schedules() -> None:
    app = WakaQ(
        queues=[(0, "high"), (1, "med"), "default"],
        schedules=[
            CronTask("* * * * *", "mytask", queue="med", args=[2, 2], kwargs={}),
            ("*/5 * * * *", "mytask", [1, 1], {}),
            ("*/10 * * * *", "anothertask"),
        ],
    )
    assert [c.task_name for c in app.schedules] == ["mytask", "mytask", "anothertask"]
    with pytest.raises(WakaQError, match="unknown task 'mytask'"):
        app.validate_schedules()
