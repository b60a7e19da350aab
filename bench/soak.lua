-- The soak's mixed load: every endpoint family in turn, each request with its own text.
local headers = { ["Content-Type"] = "application/json" }
local templates = {
  { "/v1/chat/completions", '{"model":"gpt-4o","messages":[{"role":"user","content":"soak %d"}]}' },
  { "/v1/chat/completions", '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"soak stream %d"}]}' },
  { "/v1/completions", '{"model":"gpt-3.5-turbo-instruct","prompt":"soak %d"}' },
  { "/v1/embeddings", '{"model":"text-embedding-3-small","input":"soak %d"}' },
  { "/v1/responses", '{"model":"gpt-4o","input":"soak %d"}' },
  { "/v1/chat/completions", '{"model":"gpt-4o","messages":[{"role":"user","content":"call %d"}],'
    .. '"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",'
    .. '"properties":{"a":{"type":"integer"}},"required":["a"]}}}]}' },
}
local counter = 0

request = function()
  counter = counter + 1
  local chosen = templates[(counter % #templates) + 1]
  return wrk.format("POST", chosen[1], headers, string.format(chosen[2], counter))
end
