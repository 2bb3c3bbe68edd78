"""The example app of WakaQ's README, unchanged except for the Redis URL (and the missing imports / task it uses)."""

import inspect
import os
from datetime import timedelta

from wakaq import CronTask, Queue, WakaQ

# use constants to prevent misspelling queue names
Q_HIGH = "a-high-priority-queue"
Q_MED = "a-medium-priority-queue"
Q_LOW = "a-low-priority-queue"
Q_OTHER = "another-queue"
Q_DEFAULT = "default-lowest-priority-queue"


wakaq = WakaQ(
    url=os.environ["WAKAQ_TEST_URL"],
    queues=[
        (0, Q_HIGH),
        (1, Q_MED),
        (2, Q_LOW),
        Queue(Q_OTHER, priority=3, max_retries=5, soft_timeout=300, hard_timeout=360),
        Q_DEFAULT,
    ],
    concurrency="cores*4",
    async_concurrency=0,
    soft_timeout=30,  # seconds
    hard_timeout=timedelta(minutes=1),
    max_retries=3,
    max_mem_percent=98,
    max_tasks_per_worker=5000,
    schedules=[
        CronTask("* * * * *", "mytask", queue=Q_MED, args=[2, 2], kwargs={}),
        ("*/5 * * * *", "mytask", [1, 1], {}),
        ("*/10 * * * *", "anothertask"),
    ],
)


@wakaq.task(queue=Q_MED, max_retries=7, soft_timeout=420, hard_timeout=480)
def mytask(x, y):
    print(x + y)


@wakaq.task
def a_cpu_intensive_task():
    print("hello world")


@wakaq.task
async def an_io_intensive_task():
    print("hello world")


@wakaq.task
def anothertask():
    print("hello world")


@wakaq.wrap_tasks_with
async def custom_task_decorator(fn, args, kwargs):
    # do something before each task runs, for ex: `with app.app_context():`
    if inspect.iscoroutinefunction(fn):
        await fn(*args, **kwargs)
    else:
        fn(*args, **kwargs)
    # do something after each task runs


def produce():
    """The README's `if __name__ == '__main__':` block."""
    # add 1 plus 1 on a worker somewhere
    mytask.delay(1, 1)

    # add 1 plus 1 on a worker somewhere, overwriting the task's queue from medium to high
    mytask.delay(1, 1, queue=Q_HIGH)

    # print hello world on a worker somewhere, running on the default lowest priority queue
    anothertask.delay()

    # print hello world on a worker somewhere, after 10 seconds from now
    anothertask.delay(eta=timedelta(seconds=10))

    # print hello world on a worker concurrently, even if you only have 1 worker process
    an_io_intensive_task.delay()


if __name__ == "__main__":
    produce()
