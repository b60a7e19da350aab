"""LangChain's ChatAnthropic and LiteLLM (``anthropic/`` and ``gemini/`` models) run a tool-calling
loop to its end against Anthropic's /v1/messages and Gemini's generateContent.

mokku answers the user's "Oslo" with a call of ``get_weather`` whose input is ``{"city": "Oslo"}``;
the framework runs the tool and sends its result back, and mokku's text answer echoes that result
("Sunny in Oslo"), which ends the loop.

Each loop runs in a child interpreter (this file, run as a script): LiteLLM reads its settings
from the environment at import and mutates logging and module state, both frameworks take a few
seconds to import, and the child installs an audit hook (which can never be removed) that
refuses and records any connection that is not to a loopback address, so that a framework
reaching for the internet (LiteLLM's model cost map, telemetry, LangSmith) fails the test
instead of going unnoticed. The child prints one ``RESULT {json}`` line: the turns it saw, and
the outside hosts it tried.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:
    from ..servers import LiveServer

API_KEY = "sk-ant-test"
MODEL = "claude-haiku-4-5"
MAX_TURNS = 4  # the loop takes 2; a bound so that a server that always calls the tool can't spin
CHILD_TIMEOUT = 60.0  # a hard cap; each run takes ~2-4 s (mostly imports)


# --- the child ---------------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"Sunny in {city}"


OUTSIDE: List[str] = []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _guard(event: str, args: Any) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    if host is None:
        return
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not _is_loopback(str(host)):
        OUTSIDE.append(f"{event} {host}")
        raise ConnectionRefusedError(f"this test reaches only loopback addresses, not {host}")


def run_langchain(url: str) -> List[Dict[str, Any]]:
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    weather_tool = tool(get_weather)
    model = ChatAnthropic(
        base_url=url, api_key=API_KEY, model=MODEL, max_tokens=256, max_retries=0, timeout=10
    )
    llm = model.bind_tools([weather_tool])
    messages: List[BaseMessage] = [HumanMessage("Oslo")]
    turns = []
    for _ in range(MAX_TURNS):
        reply = llm.invoke(messages)
        messages.append(reply)
        turns.append(
            {
                "stop": reply.response_metadata.get("stop_reason"),
                "content": reply.content,
                "tool_calls": [
                    {"id": call["id"], "name": call["name"], "args": call["args"]}
                    for call in reply.tool_calls
                ],
            }
        )
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            result = weather_tool.invoke(call["args"])
            messages.append(ToolMessage(content=result, tool_call_id=call["id"]))
    return turns


def quiet_litellm() -> Any:
    """LiteLLM with its cost map from the package and no callbacks: nothing sent elsewhere."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before the import, which would fetch it
    import litellm

    litellm.telemetry = False
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    return litellm


def run_litellm(url: str, model: str = f"anthropic/{MODEL}") -> List[Dict[str, Any]]:
    litellm = quiet_litellm()

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages: List[Dict[str, Any]] = [{"role": "user", "content": "Oslo"}]
    turns = []
    for _ in range(MAX_TURNS):
        response = litellm.completion(
            model=model,
            api_base=url,
            api_key=API_KEY,
            messages=messages,
            tools=tools,
            max_tokens=256,
            num_retries=0,
            timeout=10,
        )
        choice = response.choices[0]
        message = choice.message
        calls = [
            {"id": call.id, "name": call.function.name, "args": json.loads(call.function.arguments)}
            for call in message.tool_calls or []
        ]
        turns.append({"stop": choice.finish_reason, "content": message.content, "tool_calls": calls})
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                    for call in message.tool_calls or []
                ],
            }
            if calls
            else {"role": "assistant", "content": message.content}
        )
        if not calls:
            break
        for call in calls:
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": get_weather(**call["args"])}
            )
    return turns


def run_litellm_gemini(url: str) -> List[Dict[str, Any]]:
    return run_litellm(url + "/v1beta", "gemini/gemini-2.5-flash")


def run_litellm_azure_cost(url: str) -> List[Dict[str, Any]]:
    """LiteLLM prices an answer by the model it names: Azure's is the deployment's model."""
    litellm = quiet_litellm()
    priced = []
    for model in ("azure/gpt-4o-prod", "azure/text-embedding-3-small-eu"):
        call = litellm.embedding if "embedding" in model else litellm.completion
        asked: Dict[str, Any] = (
            {"input": ["price me"]}
            if "embedding" in model
            else {"messages": [{"role": "user", "content": "price me"}]}
        )
        response = call(
            model=model,
            api_base=url,
            api_key=API_KEY,
            api_version="2024-10-21",
            num_retries=0,
            timeout=10,
            **asked,
        )
        priced.append(
            {"model": response.model, "cost": litellm.completion_cost(completion_response=response)}
        )
    return priced


RUNNERS = {
    "langchain": run_langchain,
    "litellm": run_litellm,
    "litellm-gemini": run_litellm_gemini,
    "litellm-azure-cost": run_litellm_azure_cost,
}


def main(framework: str, url: str) -> None:
    sys.addaudithook(_guard)
    turns = RUNNERS[framework](url)
    print("RESULT " + json.dumps({"turns": turns, "outside": OUTSIDE}, default=repr), flush=True)


# --- the tests ---------------------------------------------------------------------------------


def run_child(framework: str, url: str) -> Dict[str, Any]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "LITELLM_", "LANGCHAIN_", "LANGSMITH_", "OPENAI_"))
    }
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    # -I: the child's sys.path is the venv's, without this file's folder (no shadowing).
    result = subprocess.run(
        [sys.executable, "-I", os.path.abspath(__file__), framework, url],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, f"{framework} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"{framework} printed no result:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def check_loop(result: Dict[str, Any], tool_stop: str, final_stop: str, id_prefix: str = "toolu_") -> None:
    assert result["outside"] == [], "the framework tried to reach beyond this machine"
    turns = result["turns"]
    assert len(turns) == 2, turns
    first, last = turns
    assert first["stop"] == tool_stop, first
    assert len(first["tool_calls"]) == 1, first
    call = first["tool_calls"][0]
    assert call["name"] == "get_weather", call
    assert call["args"] == {"city": "Oslo"}, call
    assert call["id"].startswith(id_prefix), call
    assert last["stop"] == final_stop, last
    assert last["tool_calls"] == [], last
    assert last["content"] == "Sunny in Oslo", last


def test_langchain_chat_anthropic_tool_loop(live_server: LiveServer) -> None:
    check_loop(run_child("langchain", live_server.url), tool_stop="tool_use", final_stop="end_turn")


def test_litellm_anthropic_tool_loop(live_server: LiveServer) -> None:
    check_loop(run_child("litellm", live_server.url), tool_stop="tool_calls", final_stop="stop")


def test_litellm_prices_an_azure_deployment_by_the_model_it_serves(live_server: LiveServer) -> None:
    result = run_child("litellm-azure-cost", live_server.url)
    assert result["outside"] == [], "the framework tried to reach beyond this machine"
    assert [entry["model"] for entry in result["turns"]] == ["gpt-4o-2024-08-06", "text-embedding-3-small"]
    assert all(entry["cost"] > 0 for entry in result["turns"]), result


def test_litellm_gemini_tool_loop(live_server: LiveServer) -> None:
    check_loop(
        run_child("litellm-gemini", live_server.url),
        tool_stop="tool_calls",
        final_stop="stop",
        id_prefix="call_",
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
