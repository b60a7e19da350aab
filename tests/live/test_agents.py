"""The OpenAI Agents SDK example in docs/endpoints.md, run against the real server to completion."""

from __future__ import annotations

import re
from pathlib import Path

from ..servers import LiveServer, run_python

ENDPOINTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "endpoints.md"


def test_documented_agent_loop_runs_to_completion(live_server: LiveServer) -> None:
    text = ENDPOINTS_DOC.read_text(encoding="utf-8")
    block = re.search(r"```python\n(from openai import AsyncOpenAI\nfrom agents import.*?)```", text, re.S)
    assert block, "the agent example in docs/endpoints.md is missing"
    code = block.group(1).replace("http://127.0.0.1:8080/v1", live_server.url + "/v1")
    assert run_python(code).strip() == "Sunny in Oslo"


HANDOFF_RUN = """
import sys
from openai import AsyncOpenAI
from agents import Agent, Runner, function_tool, OpenAIResponsesModel, OpenAIChatCompletionsModel, set_tracing_disabled

set_tracing_disabled(True)
client = AsyncOpenAI(base_url=sys.argv[1], api_key="any", max_retries=0)


@function_tool
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"Sunny in {city}"


for Model in (OpenAIResponsesModel, OpenAIChatCompletionsModel):
    specialist = Agent(name="weather", tools=[get_weather], model=Model(model="gpt-4o", openai_client=client))
    triage = Agent(name="triage", handoffs=[specialist], model=Model(model="gpt-4o", openai_client=client))
    specialist.handoffs = [triage]  # a handoff back: the specialist must not bounce the request
    result = Runner.run_sync(triage, "Oslo", max_turns=6)
    print(Model.__name__, result.last_agent.name, result.final_output)
"""


def test_a_handoff_hands_the_request_to_an_agent_that_acts_on_it(live_server: LiveServer) -> None:
    """Triage hands off; the specialist calls its tool for the user's request (not the handoff's
    output echoed), then answers, on the Responses API and on chat."""
    assert run_python(HANDOFF_RUN, live_server.url + "/v1").splitlines() == [
        "OpenAIResponsesModel weather Sunny in Oslo",
        "OpenAIChatCompletionsModel weather Sunny in Oslo",
    ]
