"""The Gemini API: ``models/{model}:generateContent``, ``:streamGenerateContent``, ``:countTokens``,
``:embedContent`` and ``:batchEmbedContents``, under ``/v1beta`` and ``/v1``.

The request (``contents`` of ``parts``, ``systemInstruction``, ``generationConfig``, ``tools``'
``functionDeclarations``, ``toolConfig``) is read into the neutral ``Generation`` and decided by
the same ``Replies`` as OpenAI's endpoints: the echo of the last user turn (after a
``functionResponse``, its response, so loops end), ``functionCall`` parts whose ``args`` fit the
declaration, structured output for ``responseSchema`` / ``responseJsonSchema``. Field names are
read in lowerCamelCase or snake_case and checked first, at every depth, as Google's proto3-JSON
parser checks them (``protojson``). Streams are ``data:`` chunks, each a whole ``GenerateContentResponse``
(``?alt=sse``), or one JSON array written as it is produced.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from mokku import errors
from mokku.api import embeddings, render, tools
from mokku.api.decide import (
    HANDED_OFF,
    THOUGHT,
    THOUGHT_TOKENS,
    TOOL_RESULT,
    Generation,
    Message,
    Replies,
    conversation_tokens,
    echo_text,
    ends_with_result,
    tool_answer,
)
from mokku.api.ids import random_id, signature
from mokku.api.sampling import Sampling
from mokku.api.tokens import definition_tokens
from mokku.gemini import protojson
from mokku.gemini.dialect import Blocked, envelope, ratings, translate, wants_sse
from mokku.gemini.models import THINKING, THINKING_ONLY, check_serves, not_found
from mokku.server.http import Request, Response, dumps, json_response
from mokku.server.stream import Event, Last, Token
from mokku.simulation import limits

ROLES = ("user", "model", "function")
MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto", "MODE_UNSPECIFIED": "auto"}
FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
JSON_TYPES = ("application/json",)
MIME_TYPES = frozenset(
    ("text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum")
)
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
BAD_FUNCTION_NAME = (
    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64."
)
THINKING_REQUIRED = "Budget 0 is invalid. This model only works in thinking mode."
BUDGET_AND_LEVEL = "You can only set only one of thinking budget and thinking level."
MAX_THINKING_BUDGET = 32_768  # the largest any model takes (gemini-2.5-pro's)


def field(body: Mapping[str, Any], camel: str) -> Any:
    """A field by its lowerCamelCase name or its snake_case one."""
    if camel in body:
        return body[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return body.get(snake)


def invalid(path: str, problem: str) -> errors.APIError:
    """400 worded as Google words a request check: ``* <Request>.<path>: <problem>`` and a newline."""
    return errors.invalid_request(f"* GenerateContentRequest.{path}: {problem}\n", path)


def _object(value: Any, path: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_request(
            f'Invalid JSON payload received. Expected an object at "{path}", got {errors.json_type(value)}.',
            path,
        )
    return value


def _list(value: Any, path: str) -> List[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid_request(
            f'Invalid JSON payload received. Expected a list at "{path}", got {errors.json_type(value)}.',
            path,
        )
    return value


CALL_AFTER = "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
RESPONSE_AFTER = "Please ensure that function response turn comes immediately after a function call turn."
RESPONSES_MATCH = (
    "Please ensure that the number of function response parts is equal to the number of function call parts of "
    "the function call turn."
)


class Conversation:
    def __init__(self) -> None:
        self.messages: List[Message] = []
        self.called: List[str] = []  # in order


def _check_turn(role: str, calls: int, answers: int, before: Optional[Tuple[str, int]]) -> None:
    """Function calls and their responses in the order Gemini takes them: a model turn with calls
    after a user turn, then one turn answering every call. ``before`` is the previous turn's role
    and number of calls."""
    if calls and role == "model" and (before is None or before[0] == "model"):
        raise errors.invalid_request(CALL_AFTER, "contents")
    if answers:
        if before is None or before[0] != "model" or not before[1]:
            raise errors.invalid_request(RESPONSE_AFTER, "contents")
        if answers != before[1]:
            raise errors.invalid_request(RESPONSES_MATCH, "contents")


# The models whose replies sign their first function call with a ``thoughtSignature``, which a client
# hands back on its next turn: Gemini 3 and later, but for the image models, which neither sign nor check.
_SIGNS_CALLS = re.compile(r"(models/)?gemini-([3-9]|[1-9][0-9])(?!.*-image)")
# The models that think unless told not to, listed or not: 2.5 (but Flash-Lite) and later, and the
# -latest aliases.
_THINKS = re.compile(
    r"(models/)?gemini-(2\.5(?!-flash-lite)|[3-9]|[1-9][0-9]|flash|pro|flash-lite)[-.](?!.*-(image|tts))"
)
UNSIGNED_CALL = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function "
    "call `default_api:{name}` , position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def read_contents(body: Mapping[str, Any], in_order: bool = True, signed: bool = False) -> Conversation:
    """The turns as neutral messages; ``in_order`` checks function turns as generating does (counting
    tokens takes any piece of a conversation). ``signed``: the model wants each step of the current turn
    (since the last user prompt) to hand back the signature of its first function call."""
    contents = _list(body.get("contents"), "contents")
    if not contents:
        raise invalid("contents", "contents is not specified")
    conversation = Conversation()
    previous: Optional[Tuple[str, int]] = None
    unsigned: Optional[str] = None  # the current turn's first step without its signature
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        content = _object(content, where)
        role = content.get("role") or "user"
        if role not in ROLES:
            raise invalid(f"{where}.role", f"Please use a valid role: {', '.join(ROLES[:2])}.")
        parts = _list(content.get("parts"), f"{where}.parts")
        if not parts:
            raise invalid(f"{where}.parts", "contents.parts must not be empty.")
        speaker = "assistant" if role == "model" else "user"
        before, texts, calls, answers = len(conversation.messages), [], 0, 0
        for number, part in enumerate(parts):
            part = _object(part, f"{where}.parts[{number}]")
            call, answer = field(part, "functionCall"), field(part, "functionResponse")
            if isinstance(part.get("text"), str):
                if not part.get("thought"):
                    texts.append(part["text"])
            elif isinstance(call, dict):
                calls += 1
                if (
                    calls == 1
                    and role == "model"
                    and not field(part, "thoughtSignature")
                    and unsigned is None
                ):
                    unsigned = UNSIGNED_CALL.format(name=call.get("name"), position=index + 1)
                conversation.called.append(str(call.get("name")))
                conversation.messages.append(Message("function_call", ""))
            elif isinstance(answer, dict):  # a handoff's or a hand-back's, as chat reads them
                answers += 1
                result = Message(TOOL_RESULT, _response_text(answer.get("response")))
                answered = str(answer.get("name") or "")
                conversation.messages.append(tool_answer(answered, result, conversation.messages))
        if in_order:
            _check_turn(role, calls, answers, previous)
        if role != "model" and not answers:  # a user prompt begins a new turn
            unsigned = None
        previous = (role, calls)
        if texts:
            # Text beside a turn's function responses (the AI SDK's "Tool executed successfully and
            # returned this image ...") goes before them: the responses still end the turn.
            conversation.messages.insert(
                before if answers else len(conversation.messages), Message(speaker, "\n".join(texts))
            )
            if role == "model":  # calls an agent wrote out in its text count too, as chat's do
                conversation.called.extend(tools.named_in_text(conversation.messages[-1].text))
        if len(conversation.messages) == before:  # only images, files...: the turn is there, without text
            conversation.messages.append(Message(speaker, ""))
    if signed and unsigned:
        raise errors.invalid_request(unsigned, "contents")
    return conversation


def _response_text(response: Any) -> str:
    """A function's response as text: its one string value (``{"result": "sunny"}``; beside the
    function's ``name``, as the AI SDK sends it: ``{"name": ..., "content": "sunny"}``), else its JSON."""
    if isinstance(response, dict):
        answer = (
            {key: value for key, value in response.items() if key != "name"}
            if len(response) == 2
            else response
        )
        if len(answer) == 1:
            (value,) = answer.values()
            if isinstance(value, str):
                return value
    try:
        return json.dumps(response, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:  # nested past what the encoder follows: echoed as Python shows it
        return repr(response)


def _system(body: Mapping[str, Any]) -> List[Message]:
    value = field(body, "systemInstruction")
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("system", value)]
    parts = _list(_object(value, "system_instruction").get("parts"), "system_instruction.parts")
    return [
        Message(
            "system",
            "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)),
        )
    ]


MAX_SCHEMA_DEPTH = 64


# Schema keywords as Google's parser reads them in snake_case too, by their JSON Schema names.
SCHEMA_KEYWORDS = {
    "any_of": "anyOf",
    "min_items": "minItems",
    "max_items": "maxItems",
    "min_length": "minLength",
    "max_length": "maxLength",
    "min_properties": "minProperties",
    "max_properties": "maxProperties",
    "property_ordering": "propertyOrdering",
}


def openapi_to_json_schema(schema: Any, depth: int = 0) -> Any:
    """Gemini's OpenAPI-style schema (``type: OBJECT``, ``nullable``, ``propertyOrdering``, keywords
    in either case) as JSON Schema, its properties in the order ``propertyOrdering`` gives."""
    if depth > MAX_SCHEMA_DEPTH:
        raise errors.invalid_request(
            f"* GenerateContentRequest.generation_config.response_schema: the schema nests deeper than "
            f"{MAX_SCHEMA_DEPTH} levels\n",
            "generation_config.response_schema",
        )
    if isinstance(schema, list):
        return [openapi_to_json_schema(item, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Dict[str, Any] = {}
    for name, value in schema.items():
        key = SCHEMA_KEYWORDS.get(name) or str(name)
        if key in ("propertyOrdering", "nullable", "title", "example"):
            continue
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {prop: openapi_to_json_schema(item, depth + 1) for prop, item in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = openapi_to_json_schema(value, depth + 1)
        else:
            out[key] = value
    ordering = field(schema, "propertyOrdering")
    if isinstance(out.get("properties"), dict) and isinstance(ordering, list):
        properties = out["properties"]
        first = {prop: properties[prop] for prop in ordering if isinstance(prop, str) and prop in properties}
        out["properties"] = {**first, **properties}  # the named ones first, in order; the rest after
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _config(body: Mapping[str, Any], model: str) -> Tuple[Sampling, Optional[tools.OutputFormat], bool, bool]:
    """generationConfig: the sampling (``candidateCount`` as its ``n``), structured output, whether
    the model thinks (a thinking model unless its budget is 0; any with ``includeThoughts``) and whether
    its thoughts are shown (``includeThoughts``): a thinking model's thoughts are counted either way."""
    config = _object(field(body, "generationConfig") or {}, "generation_config")
    max_tokens = protojson.integer(field(config, "maxOutputTokens"))
    if max_tokens is not None and max_tokens < 1:
        raise invalid("generation_config.max_output_tokens", "max_output_tokens must be positive.")
    stops = _list(field(config, "stopSequences"), "generation_config.stop_sequences")
    if len(stops) > 5 or not all(isinstance(s, str) for s in stops):
        raise invalid("generation_config.stop_sequences", "at most 5 stop sequences, each a string.")
    temperature = protojson.number(field(config, "temperature"))
    if temperature is not None and not 0 <= temperature <= 2:
        raise invalid("generation_config.temperature", "temperature must be between 0 and 2.")
    candidates = protojson.integer(field(config, "candidateCount")) or 1
    if not 1 <= candidates <= 8:
        raise invalid("generation_config.candidate_count", "candidate_count must be between 1 and 8.")
    mime = field(config, "responseMimeType")
    if mime and mime not in MIME_TYPES:
        raise invalid(
            "generation_config.response_mime_type",
            "allowed mimetypes are text/plain, application/json, application/xml, application/yaml and text/x.enum",
        )
    schema, schema_param = field(config, "responseJsonSchema"), "generation_config.response_json_schema"
    if schema is None and field(config, "responseSchema") is not None:
        schema = openapi_to_json_schema(field(config, "responseSchema"))
        schema_param = "generation_config.response_schema"
    output_format = None
    if schema is not None:
        if mime not in JSON_TYPES and mime != "text/x.enum":
            raise invalid(
                "generation_config.response_mime_type",
                "response_mime_type must be application/json when a response schema is set.",
            )
        output_format = tools.OutputFormat(
            "enum" if mime == "text/x.enum" else "json_schema",
            _object(schema, schema_param),
            schema_param,
        )
    elif mime in JSON_TYPES:
        output_format = tools.OutputFormat("json_object", None, "generation_config.response_mime_type")
    thinking = _object(field(config, "thinkingConfig") or {}, "generation_config.thinking_config")
    budget = protojson.integer(field(thinking, "thinkingBudget"))
    if budget is not None and field(thinking, "thinkingLevel") is not None:
        raise errors.invalid_request(BUDGET_AND_LEVEL, "generation_config.thinking_config")
    if budget is not None and not -1 <= budget <= MAX_THINKING_BUDGET:  # -1: the model decides
        raise errors.invalid_request(
            f"The thinking budget ({budget}) is invalid.", "generation_config.thinking_config.thinking_budget"
        )
    if budget == 0 and model in THINKING_ONLY:
        raise errors.invalid_request(THINKING_REQUIRED, "generation_config.thinking_config.thinking_budget")
    shown = bool(field(thinking, "includeThoughts")) and budget != 0  # a budget of 0 turns thinking off
    asked = field(thinking, "thinkingLevel") is not None or (budget is not None and budget != 0)
    thinks = shown or (budget != 0 and (asked or model in THINKING or bool(_THINKS.match(model))))
    return (
        Sampling(n=candidates, max_tokens=max_tokens, stop=tuple(s for s in stops if s)),
        output_format,
        thinks,
        shown,
    )


def _functions(body: Mapping[str, Any], conversation: Conversation) -> List[tools.Function]:
    declared: List[tools.Function] = []
    given = 0
    for index, tool in enumerate(_list(body.get("tools"), "tools")):
        tool = _object(tool, f"tools[{index}]")
        declarations = _list(field(tool, "functionDeclarations"), f"tools[{index}].function_declarations")
        given += len(declarations) or 1
        for number, declaration in enumerate(declarations):
            where = f"tools[{index}].function_declarations[{number}]"
            declaration = _object(declaration, where)
            name = declaration.get("name")
            if not isinstance(name, str) or not name:
                raise invalid(f"{where}.name", "Name cannot be empty.")
            if not FUNCTION_NAME.fullmatch(name):
                raise invalid(f"{where}.name", BAD_FUNCTION_NAME)
            schema = field(declaration, "parametersJsonSchema")
            if schema is None:
                schema = openapi_to_json_schema(declaration.get("parameters") or {"type": "object"})
            schema = _object(schema, f"{where}.parameters")
            if schema.get("type") != "object":
                raise invalid(f"{where}.parameters.type", "parameters must be of type OBJECT.")
            declared.append(tools.Function(name, schema, f"{where}.parameters", tools.described(declaration)))
    config = _object(field(body, "toolConfig") or {}, "tool_config")
    calling = _object(field(config, "functionCallingConfig") or {}, "tool_config.function_calling_config")
    mode = calling.get("mode") or "AUTO"
    if not isinstance(mode, str) or mode not in MODES:
        raise invalid("tool_config.function_calling_config.mode", f"Invalid value: {mode}")
    allowed = _list(
        field(calling, "allowedFunctionNames"), "tool_config.function_calling_config.allowed_function_names"
    )
    if allowed:
        names = {function.name for function in declared}
        for index, name in enumerate(allowed):
            if name not in names:
                raise invalid(
                    f"tool_config.function_calling_config.allowed_function_names[{index}]",
                    f'"{name}" is not the name of a declared function.',
                )
        declared = [function for function in declared if function.name in allowed]
    after_result = ends_with_result(conversation.messages)
    handed_off = bool(conversation.messages) and conversation.messages[-1].role == HANDED_OFF
    state = tools.Choice(declared, given, after_result, conversation.called, handed_off)
    return tools.choose(MODES[mode] if given else None, state, False, "tool_config", none_alone=True)


class GenerateContent:
    """The endpoint family."""

    def __init__(self, replies: Replies) -> None:
        self.replies = replies

    def _begin(self, request: Request, model: str, method: str) -> Tuple[Dict[str, Any], Any]:
        version = _version(request)
        if not model:
            raise not_found(model, version)
        check_serves(model, method, version)
        protojson.check(request.json(), "GenerateContentRequest", version)
        try:
            return self.replies.begin(request, "chat", model=model)
        except errors.APIError as error:
            if error.code != "invalid_prompt":
                raise
            raise Blocked(error, _prompt_tokens(request.json())) from None

    def generate(self, request: Request, model: str) -> Response:
        body, behaviour = self._begin(request, model, "generateContent")
        answer, _, usage, finish = self._answer(request, body, behaviour)
        return render.respond(request, behaviour, answer["responseId"], usage, [finish], body=dumps(answer))

    def stream(self, request: Request, model: str) -> Response:
        body, behaviour = self._begin(request, model, "streamGenerateContent")
        answer, tokens, usage, finish = self._answer(request, body, behaviour)
        sse = wants_sse(request)
        opened: List[bool] = []  # whether the JSON array's "[" went out
        events = _chunks(answer, tokens, sse, opened)

        def render_error(error: errors.APIError) -> bytes:
            frame = _frame(envelope(*translate(error)), sse, not opened)
            return frame if sse else frame + b"]"

        response = render.respond(
            request,
            behaviour,
            answer["responseId"],
            usage,
            [finish],
            events=events,
            render_error=render_error,
        )
        if not sse:
            response.headers = [("Content-Type", "application/json")] + [
                (name, value) for name, value in response.headers if name.lower() != "content-type"
            ]
        return response

    def _answer(
        self, request: Request, body: Dict[str, Any], behaviour: Any
    ) -> Tuple[Dict[str, Any], List[str], Dict[str, int], str]:
        conversation = read_contents(body, signed=bool(_SIGNS_CALLS.match(behaviour.model)))
        framing = _system(body)
        sampling, output_format, thinks, thoughts = _config(body, behaviour.model)
        messages = conversation.messages
        prompt = conversation_tokens(framing + messages) + definition_tokens(
            protojson.camel_keys(body.get("tools"))
        )
        thought_tokens = THOUGHT_TOKENS if thinks else 0
        limit = sampling.max_tokens
        if thinks and limit is None:  # with windows on, the model's own limit (or the window's room)
            limit = limits.output_room(request.settings, behaviour.model, prompt)
        if thinks and limit is not None:  # thoughts come first, within the output limit
            thought_tokens = min(thought_tokens, limit)
            sampling = sampling._replace(max_tokens=limit - thought_tokens)
        candidates = sampling.n
        output_format = tools.instructed(output_format, [m.text for m in framing])
        chosen = _functions(body, conversation)
        generation = Generation(
            "generate_content",
            [echo_text(messages, framing, body.get("tools"))],
            [prompt],
            sampling,
            chosen,
            output_format,
            input_param="contents",
            n_param="generation_config.candidate_count",
            conversation=framing + messages,
        )
        reply = self.replies.decide(request, behaviour, generation)
        output = reply.outputs[0]
        parts: List[Dict[str, Any]] = []
        if thoughts:
            parts.append({"text": THOUGHT, "thought": True})
        calls = tools.whole(reply.calls)  # a call the token limit cut has no args to show
        if calls:
            parts += [
                {"functionCall": {"name": call.name, "args": json.loads(call.arguments)}} for call in calls
            ]
            if _SIGNS_CALLS.match(behaviour.model):  # Gemini 3 signs a step's first call
                parts[len(parts) - len(calls)]["thoughtSignature"] = signature()
        elif sampling.max_tokens != 0:  # else thinking took every token: no text
            parts.append({"text": "".join(output.tokens)})
        finish = FINISH.get(output.finish_reason, "STOP")
        prompt = generation.prompt_tokens[0]
        made = reply.completion_tokens() * candidates  # every candidate is generated, and billed
        thought_tokens *= candidates
        usage_metadata: Dict[str, Any] = {"promptTokenCount": prompt}
        if made:  # none when thinking took every token: proto3 leaves a zero out
            usage_metadata["candidatesTokenCount"] = made
        usage_metadata["totalTokenCount"] = prompt + made + thought_tokens
        usage_metadata["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if request.cached_tokens:  # the simulated prefix cache (simulation.prefix)
            usage_metadata["cachedContentTokenCount"] = request.cached_tokens
            usage_metadata["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": request.cached_tokens}]
        if thinks:
            usage_metadata["thoughtsTokenCount"] = thought_tokens
        candidate: Dict[str, Any] = {
            "content": {"parts": parts, "role": "model"} if parts else {"role": "model"},
            "finishReason": finish,
            "index": 0,
        }
        if finish == "SAFETY":
            candidate = {"finishReason": finish, "index": 0, "safetyRatings": ratings(blocked=True)}
        answer = {
            "candidates": [dict(candidate, index=i) for i in range(candidates)],
            "usageMetadata": usage_metadata,
            "modelVersion": behaviour.model,
            "responseId": random_id("", 23),
        }
        usage = {"prompt_tokens": prompt, "completion_tokens": made}
        return answer, output.tokens if not calls else [], usage, finish

    def count_tokens(self, request: Request, model: str) -> Response:
        body = request.json()
        protojson.check(body, "CountTokensRequest", _version(request))
        inner = field(body, "generateContentRequest")
        source = _object(inner, "generate_content_request") if inner is not None else body
        total = _prompt_tokens(source)
        return json_response(
            {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
        )

    def embed(self, request: Request, model: str) -> Response:
        version = _version(request)
        check_serves(model, "embedContent", version)
        body = request.json()
        protojson.check(body, "EmbedContentRequest", version)
        return json_response({"embedding": _embedding(model, body, "")})

    def batch_embed(self, request: Request, model: str) -> Response:
        version = _version(request)
        check_serves(model, "batchEmbedContents", version)
        body = request.json()
        protojson.check(body, "BatchEmbedContentsRequest", version)
        requests = _list(body.get("requests"), "requests")
        if not requests:
            raise errors.invalid_request(
                "* BatchEmbedContentsRequest.requests: requests is not specified\n", "requests"
            )
        if len(requests) > 100:
            raise errors.invalid_request(
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n", "requests"
            )
        return json_response(
            {
                "embeddings": [
                    _embedding(model, _object(item, f"requests[{i}]"), f"requests[{i}].")
                    for i, item in enumerate(requests)
                ]
            }
        )


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    """A request's prompt tokens (its system instruction and contents), as ``countTokens`` counts
    them."""
    messages = read_contents(body, in_order=False).messages
    return conversation_tokens(_system(body) + messages) + definition_tokens(
        protojson.camel_keys(body.get("tools"))
    )


def _embedding(model: str, body: Mapping[str, Any], where: str) -> Dict[str, Any]:
    content = _object(body.get("content"), f"{where}content")
    parts = _list(content.get("parts"), f"{where}content.parts")
    text = "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
    if not text:
        raise errors.invalid_request(
            f"* EmbedContentRequest.{where}content: content must not be empty\n", f"{where}content"
        )
    dimensions = protojson.integer(field(body, "outputDimensionality")) or embeddings.GEMINI_DIMENSIONS.get(
        model, 768
    )
    if not 1 <= dimensions <= 3072:
        raise errors.invalid_request(
            f"* EmbedContentRequest.{where}output_dimensionality: must be between 1 and 3072\n",
            f"{where}output_dimensionality",
        )
    return {"values": list(embeddings.vector(model, text, dimensions))}


def _version(request: Request) -> str:
    """The API version the path asks for (``v1beta``, ``v1``), as Google's type names carry it."""
    return request.path.split("/")[1]


def _frame(chunk: Any, sse: bool, first: bool) -> bytes:
    data = dumps(chunk)
    if sse:
        return b"data: " + data + b"\r\n\r\n"
    return (b"[" if first else b",\r\n") + data


def _chunks(answer: Dict[str, Any], tokens: List[str], sse: bool, opened: List[bool]) -> Iterator[Event]:
    """The answer as chunks: one per token (the text so far split), the last with the finish reason
    and the usage; or one chunk for calls. Every chunk carries each candidate's part (they echo the
    same text), as Gemini streams ``candidateCount`` candidates side by side."""
    base = {key: answer[key] for key in ("usageMetadata", "modelVersion", "responseId")}
    candidate = answer["candidates"][0]
    finish = candidate.get("finishReason")
    opened.append(True)
    if "content" not in candidate or not tokens:
        yield Last(_frame(dict(base, candidates=answer["candidates"]), sse, True) + (b"" if sse else b"]"))
        return
    parts = candidate["content"]["parts"]
    lead = [part for part in parts if part.get("thought")]
    last = len(tokens) - 1
    for index, token in enumerate(tokens):
        chunk_parts = (lead if index == 0 else []) + [{"text": token}]
        chunk_candidate: Dict[str, Any] = {"content": {"parts": chunk_parts, "role": "model"}, "index": 0}
        if index == last:
            chunk_candidate["finishReason"] = finish
        side_by_side = [dict(chunk_candidate, index=i) for i in range(len(answer["candidates"]))]
        frame = _frame(dict(base, candidates=side_by_side), sse, index == 0)
        if index == last:
            yield Last(frame + (b"" if sse else b"]"))
        else:
            yield Token(frame)
