-- wrk script: client-credentials token requests by a key-bound client: authenticated
-- with private_key_jwt (RFC 7523 §2.2, one assertion per request) or with Basic, and
-- with a DPoP proof (RFC 9449 §4, one per request) or without.
--
--   wrk ... -s keybound.lua URL -- ASSERTIONS_FILE|- PROOFS_FILE|- [BASE64_ID_SECRET]
--
-- "-" leaves that part out; without assertions the request authenticates with Basic
-- (the third argument is base64 of ID:SECRET). The files hold one JWT per line (the make_assertions example makes both);
-- each is used once (the broker accepts a jti once), so make more than the run needs:
-- a run that wraps around counts the refusals as non-200. Prints the same WRK_RESULT
-- line as ../shared/peers/token.lua.

local threads, counter = {}, 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function lines(path)
  local all, i = {}, 0
  if path == "-" then return nil end
  for line in io.lines(path) do
    i = i + 1
    if (i - id) % #threads == 0 or #threads == 0 then table.insert(all, line) end
  end
  return all
end

function init(args)
  assertions, proofs = lines(args[1]), lines(args[2])
  next_a, next_p, non200, statuses = 1, 1, 0, {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  if not assertions then wrk.headers["Authorization"] = "Basic " .. args[3] end
end

function request()
  local body = "grant_type=client_credentials"
  if assertions then
    body = body .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" .. assertions[next_a]
    next_a = next_a % #assertions + 1
  end
  local headers = nil
  if proofs then
    -- wrk.format takes these instead of wrk.headers, not beside them.
    headers = { DPoP = proofs[next_p] }
    for k, v in pairs(wrk.headers) do headers[k] = v end
    next_p = next_p % #proofs + 1
  end
  return wrk.format(nil, nil, headers, body)
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
