"""The messages of Gemini's requests, field by field, as Google's proto3-JSON parser reads them.

Every name is the lowerCamelCase JSON name; its snake_case form is read too, as the parser reads
both. The names of each message are those of google-genai's type of the same name, so nothing the
SDK sends is refused (``tests/test_gemini_fields.py`` holds the two lists together). A message
the table does not open (a tool beside ``functionDeclarations``, a speech config...) is ``OPAQUE``:
it must be an object, its fields are not read.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Tuple


class Field(NamedTuple):
    """A field's kind: a scalar (``string``, ``int32``, ``int64``, ``float``, ``double``, ``bool``,
    ``bytes``, ``duration``), ``json`` (a google.protobuf.Struct or Value: any JSON), an enum's name
    in ``ENUMS``, or a message's in ``MESSAGES`` (``OPAQUE`` for one not read); ``repeated`` for a
    list, ``map`` for an object of string keys."""

    kind: str
    repeated: bool = False
    map: bool = False
    text: bool = False  # a string is taken for the message too (``systemInstruction``)


OPAQUE = "OPAQUE"
STRING = Field("string")
STRINGS = Field("string", repeated=True)
INT32 = Field("int32")
FLOAT = Field("float")
BOOL = Field("bool")
JSON = Field("json")
OBJECT = Field(OPAQUE)
OBJECTS = Field(OPAQUE, repeated=True)

SCALAR_TYPES = {
    "string": "TYPE_STRING",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float": "TYPE_FLOAT",
    "double": "TYPE_DOUBLE",
    "bool": "TYPE_BOOL",
    "bytes": "TYPE_BYTES",
    "duration": "type.googleapis.com/google.protobuf.Duration",
}

ENUMS: Dict[str, frozenset] = {
    "Type": frozenset("TYPE_UNSPECIFIED STRING NUMBER INTEGER BOOLEAN ARRAY OBJECT NULL".split()),
    "HarmCategory": frozenset(
        "HARM_CATEGORY_UNSPECIFIED HARM_CATEGORY_HARASSMENT HARM_CATEGORY_HATE_SPEECH "
        "HARM_CATEGORY_SEXUALLY_EXPLICIT HARM_CATEGORY_DANGEROUS_CONTENT HARM_CATEGORY_CIVIC_INTEGRITY "
        "HARM_CATEGORY_JAILBREAK HARM_CATEGORY_IMAGE_HATE HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT "
        "HARM_CATEGORY_IMAGE_HARASSMENT HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT".split()
    ),
    "HarmBlockThreshold": frozenset(
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED BLOCK_LOW_AND_ABOVE BLOCK_MEDIUM_AND_ABOVE BLOCK_ONLY_HIGH "
        "BLOCK_NONE OFF".split()
    ),
    "HarmBlockMethod": frozenset("HARM_BLOCK_METHOD_UNSPECIFIED SEVERITY PROBABILITY".split()),
    "Mode": frozenset("MODE_UNSPECIFIED AUTO ANY NONE VALIDATED".split()),
    "Behavior": frozenset("UNSPECIFIED BLOCKING NON_BLOCKING".split()),
    "Language": frozenset("LANGUAGE_UNSPECIFIED PYTHON".split()),
    "Outcome": frozenset("OUTCOME_UNSPECIFIED OUTCOME_OK OUTCOME_FAILED OUTCOME_DEADLINE_EXCEEDED".split()),
    "Scheduling": frozenset("SCHEDULING_UNSPECIFIED SILENT WHEN_IDLE INTERRUPT".split()),
    "ThinkingLevel": frozenset("THINKING_LEVEL_UNSPECIFIED MINIMAL LOW MEDIUM HIGH XHIGH".split()),
    "Modality": frozenset("MODALITY_UNSPECIFIED TEXT IMAGE AUDIO VIDEO".split()),
    "MediaResolution": frozenset(
        "MEDIA_RESOLUTION_UNSPECIFIED MEDIA_RESOLUTION_LOW MEDIA_RESOLUTION_MEDIUM MEDIA_RESOLUTION_HIGH".split()
    ),
    "ServiceTier": frozenset("unspecified flex standard priority".split()),
    "TaskType": frozenset(
        "TASK_TYPE_UNSPECIFIED RETRIEVAL_QUERY RETRIEVAL_DOCUMENT SEMANTIC_SIMILARITY CLASSIFICATION "
        "CLUSTERING QUESTION_ANSWERING FACT_VERIFICATION CODE_RETRIEVAL_QUERY".split()
    ),
}
# Taken in any case: a schema's "object" as JSON Schema spells it, and the lower-case task types and
# thinking levels clients and Google's docs write ("retrieval_query", "low").
CASE_INSENSITIVE_ENUMS = frozenset({"Type", "TaskType", "ThinkingLevel"})

MESSAGES: Dict[str, Dict[str, Field]] = {
    "Content": {"parts": Field("Part", repeated=True), "role": STRING},
    "Part": {
        "text": STRING,
        "inlineData": Field("Blob"),
        "fileData": Field("FileData"),
        "functionCall": Field("FunctionCall"),
        "functionResponse": Field("FunctionResponse"),
        "executableCode": Field("ExecutableCode"),
        "codeExecutionResult": Field("CodeExecutionResult"),
        "thought": BOOL,
        "thoughtSignature": Field("bytes"),
        "videoMetadata": Field("VideoMetadata"),
        "partMetadata": JSON,
        "mediaResolution": OBJECT,
        "toolCall": OBJECT,
        "toolResponse": OBJECT,
        "audioTranscription": OBJECT,
        "mediaProcessing": OBJECT,
        "speechMetadata": OBJECT,
        "documentMetadata": OBJECT,
        "spreadsheetMetadata": OBJECT,
        "audioMetadata": OBJECT,
    },
    "Blob": {"mimeType": STRING, "data": Field("bytes"), "displayName": STRING},
    "FileData": {"mimeType": STRING, "fileUri": STRING, "displayName": STRING},
    "FunctionCall": {
        "id": STRING,
        "name": STRING,
        "args": JSON,
        "partialArgs": OBJECTS,
        "willContinue": BOOL,
    },
    "FunctionResponse": {
        "id": STRING,
        "name": STRING,
        "response": JSON,
        "parts": OBJECTS,
        "willContinue": BOOL,
        "scheduling": Field("Scheduling"),
    },
    "ExecutableCode": {"id": STRING, "language": Field("Language"), "code": STRING},
    "CodeExecutionResult": {"id": STRING, "outcome": Field("Outcome"), "output": STRING},
    "VideoMetadata": {
        "startOffset": Field("duration"),
        "endOffset": Field("duration"),
        "fps": Field("double"),
        "contentLayers": OBJECTS,
    },
    "GenerationConfig": {
        "stopSequences": STRINGS,
        "responseMimeType": STRING,
        "responseSchema": Field("Schema"),
        "responseJsonSchema": JSON,
        "responseModalities": Field("Modality", repeated=True),
        "candidateCount": INT32,
        "maxOutputTokens": INT32,
        "temperature": FLOAT,
        "topP": FLOAT,
        "topK": INT32,
        "seed": INT32,
        "presencePenalty": FLOAT,
        "frequencyPenalty": FLOAT,
        "responseLogprobs": BOOL,
        "logprobs": INT32,
        "enableEnhancedCivicAnswers": BOOL,
        "enableAffectiveDialog": BOOL,
        "speechConfig": OBJECT,
        "thinkingConfig": Field("ThinkingConfig"),
        "mediaResolution": Field("MediaResolution"),
        "audioTimestamp": BOOL,
        "routingConfig": OBJECT,
        "modelSelectionConfig": OBJECT,
        "responseFormat": OBJECTS,
        "translationConfig": OBJECT,
        "audioTranscriptionConfig": OBJECT,
        "imageConfig": OBJECT,  # not in the SDK's GenerationConfig, but its GenerateContentConfig writes it here
    },
    "ThinkingConfig": {
        "includeThoughts": BOOL,
        "thinkingBudget": INT32,
        "thinkingLevel": Field("ThinkingLevel"),
    },
    "SafetySetting": {
        "category": Field("HarmCategory"),
        "threshold": Field("HarmBlockThreshold"),
        "method": Field("HarmBlockMethod"),
    },
    "Tool": {
        "functionDeclarations": Field("FunctionDeclaration", repeated=True),
        "retrieval": OBJECT,
        "computerUse": OBJECT,
        "fileSearch": OBJECT,
        "googleSearch": OBJECT,
        "googleMaps": OBJECT,
        "codeExecution": OBJECT,
        "enterpriseWebSearch": OBJECT,
        "googleSearchRetrieval": OBJECT,
        "parallelAiSearch": OBJECT,
        "urlContext": OBJECT,
        "mcpServers": OBJECTS,
        "exaAiSearch": OBJECT,
    },
    "FunctionDeclaration": {
        "name": STRING,
        "description": STRING,
        "behavior": Field("Behavior"),
        "parameters": Field("Schema"),
        "parametersJsonSchema": JSON,
        "response": Field("Schema"),
        "responseJsonSchema": JSON,
    },
    "Schema": {
        "type": Field("Type"),
        "format": STRING,
        "title": STRING,
        "description": STRING,
        "nullable": BOOL,
        "enum": STRINGS,
        "maxItems": Field("int64"),
        "minItems": Field("int64"),
        "properties": Field("Schema", map=True),
        "required": STRINGS,
        "minProperties": Field("int64"),
        "maxProperties": Field("int64"),
        "minLength": Field("int64"),
        "maxLength": Field("int64"),
        "pattern": STRING,
        "example": JSON,
        "anyOf": Field("Schema", repeated=True),
        "propertyOrdering": STRINGS,
        "default": JSON,
        "items": Field("Schema"),
        "minimum": Field("double"),
        "maximum": Field("double"),
        "additionalProperties": JSON,
        "defs": Field("Schema", map=True),
        "ref": STRING,
    },
    "ToolConfig": {
        "functionCallingConfig": Field("FunctionCallingConfig"),
        "retrievalConfig": OBJECT,
        "includeServerSideToolInvocations": BOOL,
    },
    "FunctionCallingConfig": {
        "mode": Field("Mode"),
        "allowedFunctionNames": STRINGS,
        "streamFunctionCallArguments": BOOL,
    },
    "GenerateContentRequest": {
        "model": STRING,
        "contents": Field("Content", repeated=True),
        "systemInstruction": Field("Content", text=True),
        "tools": Field("Tool", repeated=True),
        "toolConfig": Field("ToolConfig"),
        "safetySettings": Field("SafetySetting", repeated=True),
        "generationConfig": Field("GenerationConfig"),
        "cachedContent": STRING,
        "labels": Field("string", map=True),
        "serviceTier": Field("ServiceTier"),
        "store": BOOL,
        "continuationToken": Field("bytes"),
    },
    "CountTokensRequest": {
        "contents": Field("Content", repeated=True),
        "generateContentRequest": Field("GenerateContentRequest"),
    },
    "EmbedContentRequest": {
        "model": STRING,
        "content": Field("Content"),
        "taskType": Field("TaskType"),
        "title": STRING,
        "outputDimensionality": INT32,
    },
    "BatchEmbedContentsRequest": {"requests": Field("EmbedContentRequest", repeated=True)},
}

# A message's oneof: its name and members; each of these is required, as Google requires a part's data.
ONEOFS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "Part": (
        "data",
        (
            "text",
            "inlineData",
            "fileData",
            "functionCall",
            "functionResponse",
            "executableCode",
            "codeExecutionResult",
        ),
    ),
}
