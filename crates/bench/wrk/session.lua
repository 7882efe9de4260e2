-- wrk script for Tessera's HTTP benchmark: POSTs `resolve` or `update` requests, going
-- round-robin over a file of session cookies (one `name=value` a line, as written by
-- `bench-seed`), so that every session in the file is read in turn.
--
--   wrk -t1 -c32 -d10s --latency -s crates/bench/wrk/session.lua \
--       http://127.0.0.1:7300/v1/session/resolve -- tessera resolve cookies.txt
--   wrk ... http://127.0.0.1:7301/resolve -- peer resolve cookies.txt
--
-- Arguments after `--`: target (`tessera`: the cookie goes in the JSON body and the API key,
-- read from the TESSERA_API_KEY environment variable, in `Authorization`; `peer`: the cookie
-- goes in the `Cookie` header), operation (`resolve` or `update`), cookie file.
-- `update` sets `{"k":N}` with N a counter, so every update changes the session.
-- The path is the one in the URL.

local target, op
local cookies, n, pos, counter = {}, 0, 0, 0
local prebuilt = {}

local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function headers_for(cookie)
  if target == "tessera" then
    return {
      ["Authorization"] = "Bearer " .. api_key,
      ["Content-Type"] = "application/json",
    }
  end
  return { ["Cookie"] = cookie, ["Content-Type"] = "application/json" }
end

local function body_for(cookie, k)
  local set = k and ('"set":{"k":' .. k .. '}') or nil
  if target == "tessera" then
    local cookie_field = '"cookie":' .. json_string(cookie)
    return "{" .. cookie_field .. (set and ("," .. set) or "") .. "}"
  end
  if set then
    return "{" .. set .. "}"
  end
  return nil
end

function init(args)
  target, op = args[1], args[2]
  local file = args[3]
  assert(target == "tessera" or target == "peer", "target must be tessera or peer")
  assert(op == "resolve" or op == "update", "operation must be resolve or update")
  assert(file, "cookie file missing")
  if target == "tessera" then
    api_key = os.getenv("TESSERA_API_KEY")
    assert(api_key and #api_key > 0, "TESSERA_API_KEY is not set")
  end
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      cookies[n] = line
    end
  end
  assert(n > 0, "no cookies in " .. file)
  -- Threads start at different places in the file, and count from different bases.
  local index = thread_index or 0
  pos = (index * 7919) % n
  counter = index * 1000000000
  if op == "resolve" then
    for j = 1, n do
      prebuilt[j] = wrk.format("POST", nil, headers_for(cookies[j]), body_for(cookies[j], nil))
    end
  end
end

function request()
  pos = pos % n + 1
  if op == "resolve" then
    return prebuilt[pos]
  end
  counter = counter + 1
  local cookie = cookies[pos]
  return wrk.format("POST", nil, headers_for(cookie), body_for(cookie, counter))
end
