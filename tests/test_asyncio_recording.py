"""Recording from asyncio code: trajectories and turns in tasks, threads and async generators."""

import asyncio
import sqlite3

import pytest
from opentelemetry.sdk.trace import TracerProvider

import ppp_otel


@pytest.fixture
def recording(db_path):
    provider = TracerProvider()
    provider.add_span_processor(ppp_otel.TrajectorySpanProcessor(db_path))
    yield provider
    provider.shutdown()


def turns_by_agent(db_path) -> dict[str, list[str]]:
    rows = sqlite3.connect(db_path).execute(
        "SELECT t.agent_name, tt.prompt FROM trajectories t JOIN trajectory_turns tt"
        " ON tt.trajectory_id = t.id ORDER BY t.id, tt.turn_number").fetchall()
    found: dict[str, list[str]] = {}
    for agent, prompt in rows:
        found.setdefault(agent, []).append(prompt)
    return found


async def streaming_agent(provider, agent, prompts):
    with ppp_otel.trajectory("stream-spec", agent, tracer_provider=provider):
        for prompt in prompts:
            with ppp_otel.turn(prompt, tracer_provider=provider) as t:
                t.respond("answer to " + prompt)
                yield prompt


async def test_an_async_generator_agent_closed_from_another_task_does_not_raise_into_the_app(recording, db_path):
    # A consumer that stops early and lets another task (or the loop's finalizer)
    # close the generator: its trajectory() ends in a context it did not start in.
    agent = streaming_agent(recording, "streamer", ["first", "second"])
    assert await agent.__anext__() == "first"
    await asyncio.create_task(agent.aclose())
    with ppp_otel.trajectory("stream-spec", "after", tracer_provider=recording):
        with ppp_otel.turn("later", tracer_provider=recording) as t:
            t.respond("fine")
    recording.force_flush()
    assert turns_by_agent(db_path) == {"streamer": ["first"], "after": ["later"]}


def answer(provider, prompt):
    with ppp_otel.turn(prompt, tracer_provider=provider) as t:
        t.respond("done")


async def test_turns_of_tasks_and_threads_belong_to_the_trajectory_of_the_task_that_started_them(recording, db_path):
    async def agent(name):
        with ppp_otel.trajectory("async-spec", name, tracer_provider=recording):
            await asyncio.gather(asyncio.to_thread(answer, recording, f"{name} 1"),
                                 asyncio.to_thread(answer, recording, f"{name} 2"))

    await asyncio.gather(agent("a"), agent("b"))
    await asyncio.to_thread(recording.force_flush)
    assert {agent: sorted(prompts) for agent, prompts in turns_by_agent(db_path).items()} == {
        "a": ["a 1", "a 2"], "b": ["b 1", "b 2"]}
