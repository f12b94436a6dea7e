-- wrk script: client-credentials token requests authenticated with private_key_jwt
-- (RFC 7523 §2.2), each with its own assertion (the broker accepts a jti once).
--
--   wrk ... -s assertion.lua URL -- ASSERTIONS_FILE
--
-- The assertions (one per line, made by the make_assertions example) are read at
-- start; each thread takes every Nth. A run that uses them all sends the rest again
-- and counts their 401s as non-200, so make more than the run needs. Prints the same
-- WRK_RESULT line as ../shared/peers/token.lua.

local threads, counter = {}, 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local all, i = {}, 0
  for line in io.lines(args[1]) do
    i = i + 1
    if (i - id) % #threads == 0 or #threads == 0 then table.insert(all, line) end
  end
  assertions, next_i, non200, statuses = all, 1, 0, {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  local a = assertions[next_i]
  next_i = next_i % #assertions + 1
  return wrk.format(nil, nil, nil,
    "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" .. a)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    local k = tostring(status)
    statuses[k] = (statuses[k] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("non200") or 0) end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK_RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f non200=%d socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    total, e.connect + e.read + e.write + e.timeout))
end
