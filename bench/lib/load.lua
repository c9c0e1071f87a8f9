-- wrk script for every scenario of bench/run, against sessiond or webdis.
--
--   wrk ... -s load.lua URL -- MODE [FILE [FILE2 | SIZE]]
--
--   sessiond modes (POST / with a JSON-RPC body):
--     verify  TOKENS          session.verify_session_token, cycling through the live tokens
--     open                    session.open_session {"expires_in": 3600}
--     close   TOKENS          session.close_session, each live token once
--     mixed   TOKENS CLOSE    per 20 requests: 18 verify (TOKENS, cycled), 1 open, 1 close
--                             (CLOSE, each once) = 90/5/5
--     batch   TOKENS SIZE     one HTTP request carrying SIZE verify calls
--     introspect TOKENS       session.introspect_session, cycling through the live tokens
--     auth    TOKENS          GET /auth with Authorization: Bearer <token>, cycled
--   the ceiling reference (bench/ceiling.rs) takes the verify mode: the same requests
--   webdis modes (GET, webdis's URL form):
--     exists  KEYS            GET /EXISTS/<key>, cycling through live keys
--     set                     GET /SET/<new key>/1/EX/3600
--     del     KEYS            GET /DEL/<key>, each live key once
--
-- Each wrk thread takes every n-th line of the files, so threads never share a token.
-- done() prints one machine-readable line:
--   BENCH requests=… rps=… p50_us=… p99_us=… mean_us=… errors=… wrapped=…
-- where wrapped counts "each once" requests that found their file used up and started over
-- (they then hit tokens that are already closed: the run was longer than planned).

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function read_lines(path, tid, nthreads)
  local lines, i = {}, 0
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in f:lines() do
    if (i % nthreads) == (tid - 1) and #line > 0 then
      lines[#lines + 1] = line
    end
    i = i + 1
  end
  f:close()
  assert(#lines > 0, "no lines for this thread in " .. path)
  return lines
end

local json_headers = { ["Content-Type"] = "application/json" }

local function rpc(method, params, id)
  return '{"jsonrpc":"2.0","method":"' .. method .. '","params":' .. params .. ',"id":' .. id .. '}'
end

local function post(body)
  return wrk.format("POST", "/", json_headers, body)
end

local function verify_body(token, id)
  return rpc("session.verify_session_token", '{"token":"' .. token .. '"}', id)
end

wrapped = 0
local mode
local pool, pool_i = nil, 0          -- cycled requests (prebuilt)
local static_open
local tick = 0
local seq = 0

local function next_cycled()
  pool_i = pool_i + 1
  if pool_i > #pool then pool_i = 1 end
  return pool[pool_i]
end

-- Tokens (or keys) used once each are read from their file as they are needed, not held in a
-- table: a table of 1.6M strings (a close run at 90k requests/s) made LuaJIT's collector stop
-- wrk for 50-170 ms at a time, which showed up as the server's p99 (51 ms for close, whose
-- own call durations stayed under 6.4 ms). Thread tid of n takes lines tid, tid+n, ...
local once_file, once_tid, once_n

local function open_once(path, tid, nthreads)
  once_file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  once_tid, once_n = tid, nthreads
end

local function next_once()
  local mine
  for k = 1, once_n do
    local line = once_file:read("*l")
    if line == nil then
      once_file:seek("set")
      wrapped = wrapped + 1
      line = assert(once_file:read("*l"), "no lines in the once file")
    end
    if k == once_tid then mine = line end
  end
  return mine
end

function init(args)
  mode = args[1]
  -- tid is set by setup() in this thread's state; bench/run exports WRK_THREADS (= -t)
  local tid = tonumber(tid) or 1
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  static_open = post(rpc("session.open_session", '{"expires_in":3600}', 1))
  if mode == "verify" then
    pool = {}
    for i, token in ipairs(read_lines(args[2], tid, nthreads)) do
      pool[i] = post(verify_body(token, 1))
    end
  elseif mode == "open" then
    -- static request
  elseif mode == "close" then
    open_once(args[2], tid, nthreads)
  elseif mode == "mixed" then
    pool = {}
    for i, token in ipairs(read_lines(args[2], tid, nthreads)) do
      pool[i] = post(verify_body(token, 1))
    end
    open_once(args[3], tid, nthreads)
  elseif mode == "batch" then
    local size = tonumber(args[3] or "100")
    local tokens = read_lines(args[2], tid, nthreads)
    pool = {}
    local n = math.max(1, math.floor(#tokens / size))
    for b = 0, n - 1 do
      local parts = {}
      for j = 1, size do
        local token = tokens[((b * size + j - 1) % #tokens) + 1]
        parts[j] = verify_body(token, j)
      end
      pool[#pool + 1] = post("[" .. table.concat(parts, ",") .. "]")
    end
  elseif mode == "introspect" then
    pool = {}
    for i, token in ipairs(read_lines(args[2], tid, nthreads)) do
      pool[i] = post(rpc("session.introspect_session", '{"token":"' .. token .. '"}', 1))
    end
  elseif mode == "auth" then
    pool = {}
    for i, token in ipairs(read_lines(args[2], tid, nthreads)) do
      pool[i] = wrk.format("GET", "/auth", { ["Authorization"] = "Bearer " .. token })
    end
  elseif mode == "exists" then
    pool = {}
    for i, key in ipairs(read_lines(args[2], tid, nthreads)) do
      pool[i] = wrk.format("GET", "/EXISTS/" .. key)
    end
  elseif mode == "set" then
    -- keys made up on the fly, the same length as sessiond's (9 + 64 characters)
    seq = tid * 1000000000000
  elseif mode == "del" then
    open_once(args[2], tid, nthreads)
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  if mode == "verify" or mode == "batch" or mode == "exists" or mode == "introspect"
      or mode == "auth" then
    return next_cycled()
  elseif mode == "open" then
    return static_open
  elseif mode == "close" then
    return post(rpc("session.close_session", '{"token":"' .. next_once() .. '"}', 1))
  elseif mode == "mixed" then
    tick = tick + 1
    if tick > 20 then tick = 1 end
    if tick == 10 then
      return static_open
    elseif tick == 20 then
      return post(rpc("session.close_session", '{"token":"' .. next_once() .. '"}', 1))
    end
    return next_cycled()
  elseif mode == "set" then
    seq = seq + 1
    return wrk.format("GET", string.format("/SET/sessiond:%064d/1/EX/3600", seq))
  elseif mode == "del" then
    return wrk.format("GET", "/DEL/" .. next_once())
  end
end

function done(summary, latency, requests)
  local w = 0
  for _, thread in ipairs(threads) do
    w = w + (tonumber(thread:get("wrapped")) or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d rps=%.1f p50_us=%d p99_us=%d mean_us=%.1f errors=%d wrapped=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.status + e.timeout, w))
end
