"""A FastAPI service that sends wakaq tasks without blocking its event loop.

    WAKAQ_URL=redis://localhost:6379 uvicorn fastapi_app:api --app-dir docs/examples     # the web service
    WAKAQ_URL=redis://localhost:6379 PYTHONPATH=docs/examples wakaq-worker --app fastapi_app.wakaq

`POST /signup` enqueues a task and answers at once; `POST /count` enqueues a task that stores its result and awaits
that result (at most `timeout` seconds) before answering. Both `await`: the event loop serves other requests while
Redis answers. (tests/test_fastapi_example.py runs this file with a real worker and a real uvicorn.)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import redis
import redis.asyncio
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from wakaq import TaskFailed, WakaQ

REDIS_URL = os.environ.get("WAKAQ_URL", "redis://localhost:6379")

# NOTE: module level, so that `wakaq-worker --app fastapi_app.wakaq` finds the same tasks as the web service
wakaq = WakaQ(queues=["default"], url=REDIS_URL, concurrency=1)


@wakaq.task
def send_welcome(email: str) -> None:
    """Fire and forget (a real one would send an e-mail): marks the address as welcomed."""
    with redis.Redis.from_url(REDIS_URL) as client:
        client.sadd("example:welcomed", email)


@wakaq.task(store_results=True, result_ttl=timedelta(minutes=10))
def count_words(text: str) -> int:
    return len(text.split())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up: fail fast when Redis is unreachable; the handlers reach the tasks through `app.state.wakaq`."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    finally:
        await client.aclose()
    app.state.wakaq = wakaq
    yield


api = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str


class Text(BaseModel):
    text: str
    timeout: float = 10.0


@api.post("/signup", status_code=202)
async def signup(body: Signup) -> dict[str, bool]:
    await send_welcome.adelay(body.email)
    return {"queued": True}


@api.post("/count")
async def count(body: Text) -> dict[str, object]:
    handle = await count_words.adelay(body.text)
    try:
        words = await handle.aresult(timeout=body.timeout)
    except TimeoutError as e:
        raise HTTPException(504, f"task {handle.id} has not finished yet") from e
    except TaskFailed as e:
        raise HTTPException(500, f"task {handle.id} failed: {e.error_type}") from e
    return {"id": handle.id, "words": words}
